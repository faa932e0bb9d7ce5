// Package chdb binds the small C API of libchdb, the ClickHouse engine as a
// shared library, with purego: no cgo, and nothing happens until Load is
// called. That is the point of this package: chdb-go dlopens the library in
// a package init() and panics when it is missing, so a binary importing it
// cannot print --help or talk to a ClickHouse server without the 566 MB
// library. Here the library is opened on first use of a chdb:// DSN, and its
// absence is an ordinary error.
//
// The engine allows one connection (one data directory) per process; Open
// enforces that.
package chdb

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Sentinel errors.
var (
	// ErrNotInstalled means libchdb could not be found or loaded.
	ErrNotInstalled = errors.New("chdb: libchdb is not installed")
	// ErrInUse means the process already holds an engine on another directory.
	ErrInUse = errors.New("chdb: engine already open on another directory")
	// ErrClosed means the connection was closed.
	ErrClosed = errors.New("chdb: connection closed")
)

// cResult mirrors chdb_result: an opaque handle the library owns.
type cResult struct{ _ unsafe.Pointer }

// cConnection mirrors struct chdb_connection_: an opaque handle.
type cConnection struct{ _ unsafe.Pointer }

// The C functions, filled by load.
var (
	chdbConnect            func(argc int32, argv **byte) **cConnection
	chdbCloseConn          func(conn **cConnection)
	chdbQuery              func(conn *cConnection, query, format string) *cResult
	chdbDestroyQueryResult func(res *cResult)
	chdbResultBuffer       func(res *cResult) unsafe.Pointer
	chdbResultLength       func(res *cResult) uintptr
	chdbResultError        func(res *cResult) string
	chdbResultRowsRead     func(res *cResult) uint64
	chdbResultElapsed      func(res *cResult) float64
)

var (
	loadOnce sync.Once
	loadErr  error
	loaded   string
)

// Load opens the library at path once per process and binds its functions.
// Later calls return the first call's result, whatever their path.
func Load(path string) error {
	loadOnce.Do(func() {
		lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("%w: load %s: %v", ErrNotInstalled, path, err)
			return
		}
		defer func() {
			// RegisterLibFunc panics on a missing symbol: an incompatible library.
			if r := recover(); r != nil {
				loadErr = fmt.Errorf("%w: %s is not a compatible libchdb: %v", ErrNotInstalled, path, r)
			}
		}()
		purego.RegisterLibFunc(&chdbConnect, lib, "chdb_connect")
		purego.RegisterLibFunc(&chdbCloseConn, lib, "chdb_close_conn")
		purego.RegisterLibFunc(&chdbQuery, lib, "chdb_query")
		purego.RegisterLibFunc(&chdbDestroyQueryResult, lib, "chdb_destroy_query_result")
		purego.RegisterLibFunc(&chdbResultBuffer, lib, "chdb_result_buffer")
		purego.RegisterLibFunc(&chdbResultLength, lib, "chdb_result_length")
		purego.RegisterLibFunc(&chdbResultError, lib, "chdb_result_error")
		purego.RegisterLibFunc(&chdbResultRowsRead, lib, "chdb_result_rows_read")
		purego.RegisterLibFunc(&chdbResultElapsed, lib, "chdb_result_elapsed")
		loaded = path
	})
	return loadErr
}

// Conn is the process's connection to the embedded engine.
type Conn struct {
	mu   sync.Mutex
	conn **cConnection
	path string
}

var (
	openMu sync.Mutex
	open   *Conn
)

// Open connects to the engine with its data in dir, after Load. The engine
// holds one connection per process: while one is open, Open fails with
// ErrInUse (whatever the directory); after Close, any directory may be
// opened. Another process holding dir makes Open fail too.
func Open(dir string, args ...string) (*Conn, error) {
	if loaded == "" {
		return nil, fmt.Errorf("chdb: open %s: library not loaded", dir)
	}
	openMu.Lock()
	defer openMu.Unlock()
	if open != nil {
		return nil, fmt.Errorf("%w: %s is open, asked for %s", ErrInUse, open.path, dir)
	}
	argv := append([]string{"clickhouse", "--path=" + dir}, args...)
	cargs := make([]*byte, len(argv)+1)
	for i, a := range argv {
		b := append([]byte(a), 0)
		cargs[i] = &b[0]
	}
	c := chdbConnect(int32(len(argv)), &cargs[0])
	if c == nil || *c == nil {
		return nil, fmt.Errorf("chdb: connect to %s failed (is another process using it?)", dir)
	}
	open = &Conn{conn: c, path: dir}
	return open, nil
}

// Path returns the data directory.
func (c *Conn) Path() string { return c.path }

// Query runs one statement and returns its output in format (any ClickHouse
// output format, e.g. "JSONCompact", "TabSeparated"). An engine error comes
// back as an *Error with ClickHouse's message.
func (c *Conn) Query(query, format string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, ErrClosed
	}
	var out []byte
	err := c.run(query, format, &out)
	return out, err
}

// QueryParams runs query with ClickHouse query parameters bound: each
// {name:Type} placeholder in query takes params[name]. The engine keeps
// parameters in its session, so they are set and the query run under one
// lock; a later query cannot see them unless it sets its own. Names must
// be identifiers; values are escaped, never spliced into the query.
func (c *Conn) QueryParams(params map[string]string, query, format string) ([]byte, error) {
	if len(params) == 0 {
		return c.Query(query, format)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, ErrClosed
	}
	for name, value := range params {
		if !isIdent(name) {
			return nil, fmt.Errorf("chdb: query parameter name %q is not an identifier", name)
		}
		if err := c.run("SET param_"+name+" = "+paramLiteral(value), "TabSeparated", nil); err != nil {
			return nil, fmt.Errorf("chdb: bind parameter %s: %w", name, err)
		}
	}
	var out []byte
	err := c.run(query, format, &out)
	return out, err
}

// run executes one statement with the lock held.
func (c *Conn) run(query, format string, out *[]byte) error {
	res := chdbQuery(*c.conn, query, format)
	if res == nil {
		return nil
	}
	defer chdbDestroyQueryResult(res)
	if msg := chdbResultError(res); msg != "" {
		return &Error{Message: msg}
	}
	n := chdbResultLength(res)
	buf := chdbResultBuffer(res)
	if out == nil || n == 0 || buf == nil {
		return nil
	}
	*out = make([]byte, n)
	copy(*out, unsafe.Slice((*byte)(buf), n))
	return nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

// paramLiteral quotes v for SET param_x = '...'. ClickHouse reads a
// parameter's text in its escaped (TabSeparated) form, so v is escaped
// twice: for that form, then as a SQL string literal.
func paramLiteral(v string) string {
	tsv := strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n", "\r", "\\r", "\x00", "\\0").Replace(v)
	return "'" + strings.NewReplacer("\\", "\\\\", "'", "\\'").Replace(tsv) + "'"
}

// Close closes the connection; the process may then Open another directory.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	chdbCloseConn(c.conn)
	c.conn = nil
	openMu.Lock()
	if open == c {
		open = nil
	}
	openMu.Unlock()
	return nil
}

// Error is an error the engine reported, with ClickHouse's own text, such as
// "Code: 60. DB::Exception: Unknown table ...".
type Error struct {
	// Message is the engine's message.
	Message string
}

// Error implements error.
func (e *Error) Error() string { return "chdb: " + e.Message }

var (
	codeRe     = regexp.MustCompile(`^Code: (\d+)\. `)
	codeNameRe = regexp.MustCompile(`\(([A-Z][A-Z0-9_]+)\)\s*$`)
)

// Code returns the ClickHouse error code the message starts with ("Code:
// 252. DB::Exception: ..."), and the code's name the engine ends it with
// ("(TOO_MANY_PARTS)"), when it names one; ok is false when the message
// carries no code (an error of the binding, not of the engine).
func (e *Error) Code() (code int, name string, ok bool) {
	msg := strings.TrimSpace(e.Message)
	m := codeRe.FindStringSubmatch(msg)
	if m == nil {
		return 0, "", false
	}
	code, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, "", false
	}
	if n := codeNameRe.FindStringSubmatch(msg); n != nil {
		name = n[1]
	}
	return code, name, true
}
