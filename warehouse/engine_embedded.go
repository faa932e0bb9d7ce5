package warehouse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/sentinel-iot/sentinel/warehouse/chdb"
)

// embedded runs queries on libchdb in this process.
type embedded struct {
	conn *chdb.Conn
}

func openEmbedded(dir string, opts Options) (engine, error) {
	lib := opts.LibPath
	if lib == "" {
		var err error
		if lib, err = chdb.Locate(); err != nil {
			return nil, fmt.Errorf("warehouse: open embedded engine at %s: %w", dir, err)
		}
	}
	if err := chdb.Load(lib); err != nil {
		return nil, fmt.Errorf("warehouse: open embedded engine at %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("warehouse: create data directory: %w", err)
	}
	conn, err := chdb.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("warehouse: open embedded engine: %w", err)
	}
	opts.Logger.Info("embedded ClickHouse engine open", "dir", dir, "lib", lib)
	return &embedded{conn: conn}, nil
}

func (e *embedded) name() string { return "embedded ClickHouse (libchdb " + chdb.LibVersion + ")" }

func (e *embedded) exec(ctx context.Context, query string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := e.conn.Query(query, "TabSeparated")
	return err
}

func (e *embedded) query(ctx context.Context, query string, params map[string]string) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := e.conn.QueryParams(params, query, "JSONCompact")
	if err != nil {
		return nil, err
	}
	return parseJSONCompact(out)
}

// insert sends the rows as JSONEachRow, the format the engine reads fastest
// from Go values; times are RFC 3339, which best_effort parsing accepts.
func (e *embedded) insert(ctx context.Context, table string, rows []any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("INSERT INTO ")
	buf.WriteString(table)
	buf.WriteString(" SETTINGS date_time_input_format='best_effort' FORMAT JSONEachRow\n")
	enc := json.NewEncoder(&buf)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("encode row: %w", err)
		}
	}
	_, err := e.conn.Query(buf.String(), "TabSeparated")
	return err
}

func (e *embedded) close() error { return e.conn.Close() }

// parseJSONCompact turns the engine's JSONCompact output into a Result,
// printing every value the way ClickHouse's TabSeparated would.
func parseJSONCompact(out []byte) (*Result, error) {
	res := &Result{}
	if len(bytes.TrimSpace(out)) == 0 {
		return res, nil
	}
	var doc struct {
		Meta []Column            `json:"meta"`
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("decode engine output: %w", err)
	}
	res.Columns = doc.Meta
	res.Rows = make([][]string, len(doc.Data))
	for i, row := range doc.Data {
		res.Rows[i] = make([]string, len(row))
		for j, v := range row {
			res.Rows[i][j] = rawText(v)
		}
	}
	return res, nil
}

func rawText(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			return s
		}
	case 'n':
		return "NULL"
	}
	return string(v)
}
