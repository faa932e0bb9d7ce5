package warehouse

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// server talks to a ClickHouse server through clickhouse-go, over the native
// protocol (clickhouse://) or HTTP (http://, https://).
type server struct {
	conn driver.Conn
	addr string
}

func openServer(ctx context.Context, dsn string, opts Options) (engine, error) {
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("warehouse: parse DSN %s: %w", redact(dsn), err)
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		return nil, fmt.Errorf("warehouse: open %s: %w", redact(dsn), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("warehouse: ping %s (is the server up and the DSN right?): %w", redact(dsn), err)
	}
	opts.Logger.Info("ClickHouse server connected", "addr", strings.Join(o.Addr, ","), "protocol", o.Protocol.String())
	return &server{conn: conn, addr: strings.Join(o.Addr, ",")}, nil
}

func (s *server) name() string { return "ClickHouse server at " + s.addr }

func (s *server) exec(ctx context.Context, query string) error {
	return s.conn.Exec(ctx, query)
}

func (s *server) query(ctx context.Context, query string, params map[string]string) (*Result, error) {
	if len(params) > 0 {
		ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters(params)))
	}
	rows, err := s.conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	res := &Result{Columns: make([]Column, len(types))}
	dest := make([]any, len(types))
	for i, ct := range types {
		res.Columns[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan row %d: %w", len(res.Rows)+1, err)
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = formatValue(reflect.ValueOf(d).Elem(), res.Columns[i].Type)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// formatValue prints v the way ClickHouse's TabSeparated output does, so
// both engines give the same text for the same result.
func formatValue(v reflect.Value, typ string) string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "NULL"
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Time:
		// DateTime64(P, ...) prints P fraction digits, always; DateTime none.
		if p := dateTimePrecision(typ); p > 0 {
			return x.Format(time.DateTime + "." + strings.Repeat("0", p))
		}
		return x.Format(time.DateTime)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v.Interface())
}

func (s *server) insert(ctx context.Context, table string, rows []any) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		return fmt.Errorf("prepare batch: %w", err)
	}
	defer batch.Close()
	for i, r := range rows {
		if err := batch.AppendStruct(r); err != nil {
			return fmt.Errorf("append row %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	return nil
}

func (s *server) close() error { return s.conn.Close() }

// dateTimePrecision returns P of a DateTime64(P, ...) type, possibly
// wrapped in Nullable or LowCardinality, and 0 for anything else.
func dateTimePrecision(typ string) int {
	i := strings.Index(typ, "DateTime64(")
	if i < 0 {
		return 0
	}
	rest := typ[i+len("DateTime64("):]
	if j := strings.IndexAny(rest, ",)"); j > 0 {
		if p, err := strconv.Atoi(strings.TrimSpace(rest[:j])); err == nil {
			return p
		}
	}
	return 3
}
