// Package analytics holds the SQL analysts run against the warehouse: named,
// documented queries written for ClickHouse with CTEs and window functions,
// embedded in the binary and runnable as they are with clickhouse-client.
//
// Each file in queries/ is one query. Its leading comment block names it
// ("-- name: ..."), titles it ("-- title: ..."), says why it exists and
// states its unit, denominator and exclusions, and may say why it can come
// back empty ("-- empty: ...", one line).
package analytics

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/sentinel-iot/sentinel/warehouse"
)

//go:embed queries/*.sql
var files embed.FS

// ErrUnknownQuery means no query has the name asked for.
var ErrUnknownQuery = errors.New("analytics: unknown query")

// Query is one named query from the library.
type Query struct {
	// Name identifies the query, as in `sentinel report <name>`.
	Name string
	// Title is a one-line summary.
	Title string
	// Doc is the rest of the leading comment: why the query exists and how to read it.
	Doc string
	// Empty says why the query can return no rows on a real fleet ("--
	// empty: ..."), for a report to print instead of an empty table; ""
	// when an empty result needs no explanation beyond the filters.
	Empty string
	// SQL is the whole file, comments included.
	SQL string
}

// Queries returns the library, sorted by name.
func Queries() ([]Query, error) {
	qs, err := library()
	return append([]Query(nil), qs...), err
}

// library parses the embedded files once: they are fixed at build time,
// and Run looks a query up on every call.
var library = sync.OnceValues(func() ([]Query, error) {
	entries, err := fs.Glob(files, "queries/*.sql")
	if err != nil {
		return nil, fmt.Errorf("analytics: list queries: %w", err)
	}
	out := make([]Query, 0, len(entries))
	for _, e := range entries {
		b, err := files.ReadFile(e)
		if err != nil {
			return nil, fmt.Errorf("analytics: read %s: %w", e, err)
		}
		q := parse(string(b))
		if q.Name == "" {
			q.Name = strings.TrimSuffix(path.Base(e), ".sql")
		}
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
})

// Get returns the query called name.
func Get(name string) (Query, error) {
	qs, err := library()
	if err != nil {
		return Query{}, err
	}
	var names []string
	for _, q := range qs {
		if q.Name == name {
			return q, nil
		}
		names = append(names, q.Name)
	}
	return Query{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownQuery, name, strings.Join(names, ", "))
}

// Run runs the query called name against db, narrowed by f.
func Run(ctx context.Context, db *warehouse.DB, name string, f Filter) (*warehouse.Result, error) {
	q, err := Get(name)
	if err != nil {
		return nil, err
	}
	params, err := f.Params()
	if err != nil {
		return nil, err
	}
	res, err := db.Query(ctx, q.SQL, warehouse.WithParams(params))
	if err != nil {
		return nil, fmt.Errorf("analytics: run %s: %w", name, err)
	}
	return res, nil
}

// parse reads the leading comment block's name, title and doc.
func parse(sql string) Query {
	q := Query{SQL: sql}
	var doc []string
	sc := bufio.NewScanner(strings.NewReader(sql))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		text, ok := strings.CutPrefix(line, "--")
		if !ok {
			break
		}
		text = strings.TrimSpace(text)
		switch {
		case strings.HasPrefix(text, "name:"):
			q.Name = strings.TrimSpace(strings.TrimPrefix(text, "name:"))
		case strings.HasPrefix(text, "title:"):
			q.Title = strings.TrimSpace(strings.TrimPrefix(text, "title:"))
		case strings.HasPrefix(text, "empty:"):
			q.Empty = strings.TrimSpace(strings.TrimPrefix(text, "empty:"))
		default:
			doc = append(doc, text)
		}
	}
	q.Doc = strings.TrimSpace(strings.Join(doc, "\n"))
	return q
}
