package warehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
)

// Sentinel errors.
var (
	// ErrClosed means the DB was closed.
	ErrClosed = errors.New("warehouse: closed")
	// ErrNoRows means a query that should return a value returned no row.
	ErrNoRows = errors.New("warehouse: no rows")
)

// Options configures Open. The zero value works.
type Options struct {
	// LibPath is the libchdb to load for an embedded DSN. Default: chdb.Locate()
	// ($CHDB_LIB_PATH, then the `sentinel setup` cache).
	LibPath string
	// Logger receives engine events. Default: discarded.
	Logger *slog.Logger
	// Engine are the embedded engine's access rules' memory ceilings (an
	// embedded DSN only). Default: DefaultEngineMaxQueryMemory and
	// DefaultEngineMaxMemory.
	Engine EngineLimits
}

func (o *Options) ensureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// engine is what each backend implements.
type engine interface {
	exec(ctx context.Context, query string) error
	query(ctx context.Context, query string, params map[string]string) (*Result, error)
	insert(ctx context.Context, table string, rows []any) error
	close() error
	name() string
}

// DB is a connection to the warehouse, safe for concurrent use.
type DB struct {
	eng    engine
	dsn    DSN
	log    *slog.Logger
	mu     sync.RWMutex
	closed bool
}

// Open connects to the warehouse named by dsn. An embedded DSN loads libchdb
// on first use and fails with an error wrapping chdb.ErrNotInstalled, naming
// the install command, when the library is missing. Open does not migrate;
// call Migrate.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	opts.ensureDefaults()
	d, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var eng engine
	switch d.Kind {
	case Embedded:
		eng, err = openEmbedded(d.Path, opts)
	default:
		eng, err = openServer(ctx, d.URL, opts)
	}
	if err != nil {
		return nil, err
	}
	return &DB{eng: eng, dsn: d, log: opts.Logger}, nil
}

// Engine names the engine in use, for logs and status lines.
func (db *DB) Engine() string { return db.eng.name() }

// Embedded reports whether the DB runs the in-process engine.
func (db *DB) Embedded() bool { return db.dsn.Kind == Embedded }

// Exec runs a statement that returns no rows.
func (db *DB) Exec(ctx context.Context, query string) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.mu.RUnlock()
	if err := db.eng.exec(ctx, query); err != nil {
		return fmt.Errorf("warehouse: exec %s: %w", abbrev(query), err)
	}
	return nil
}

// QueryOption adjusts one query.
type QueryOption func(*queryOptions)

type queryOptions struct {
	params map[string]string
}

// WithParams binds ClickHouse query parameters: a {name:Type} placeholder
// in the SQL takes params[name], parsed by the engine as Type. Values never
// become SQL text, so a filter value cannot change the query.
func WithParams(params map[string]string) QueryOption {
	return func(o *queryOptions) { o.params = params }
}

// Query runs a statement and returns all its rows as text, the way
// ClickHouse prints them.
func (db *DB) Query(ctx context.Context, query string, opts ...QueryOption) (*Result, error) {
	var o queryOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.mu.RUnlock()
	res, err := db.eng.query(ctx, query, o.params)
	if err != nil {
		return nil, fmt.Errorf("warehouse: query %s: %w", abbrev(query), err)
	}
	return res, nil
}

// QueryInt runs query and returns the first column of its first row as an
// integer: what counts and sums need.
func (db *DB) QueryInt(ctx context.Context, query string, opts ...QueryOption) (int64, error) {
	res, err := db.Query(ctx, query, opts...)
	if err != nil {
		return 0, err
	}
	if len(res.Rows) == 0 || len(res.Rows[0]) == 0 {
		return 0, fmt.Errorf("warehouse: query %s: %w", abbrev(query), ErrNoRows)
	}
	n, err := strconv.ParseInt(res.Rows[0][0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("warehouse: query %s: first value %q is not an integer", abbrev(query), res.Rows[0][0])
	}
	return n, nil
}

// Insert writes rows, a slice of one of this package's row types (or any
// struct with matching `ch` and `json` tags), into table as one batch.
func Insert[T any](ctx context.Context, db *DB, table string, rows []T) error {
	if len(rows) == 0 {
		return nil
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.mu.RUnlock()
	anyRows := make([]any, len(rows))
	for i := range rows {
		anyRows[i] = &rows[i]
	}
	if err := db.eng.insert(ctx, table, anyRows); err != nil {
		return fmt.Errorf("warehouse: insert %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// Close releases the engine. An embedded engine's data directory may then
// be opened again, by this process or another.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	return db.eng.close()
}

func (db *DB) acquire() error {
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func abbrev(q string) string {
	const max = 80
	if len(q) > max {
		q = q[:max] + "..."
	}
	return strconv.Quote(q)
}
