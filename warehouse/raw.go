package warehouse

import (
	"context"
	"errors"
	"fmt"

	"github.com/sentinel-iot/sentinel/warehouse/chdb"
)

// ErrNotEmbedded means an operation needs the in-process engine, and the DB
// talks to a ClickHouse server instead.
var ErrNotEmbedded = errors.New("warehouse: not the embedded engine")

// RawQuery runs query on the embedded engine exactly as written and returns
// its output in format (any ClickHouse output format; a FORMAT clause in the
// query wins) with the engine's statistics. It exists so the embedded
// warehouse can be served to other processes (package httpserver): the
// engine's bytes go to the client unchanged, with no Go decoding in between.
// Query parameters from WithParams are bound for this query only. An engine
// error wraps a *chdb.Error carrying ClickHouse's own "Code: N." text.
func (db *DB) RawQuery(ctx context.Context, query, format string, opts ...QueryOption) (*chdb.Result, error) {
	var o queryOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.mu.RUnlock()
	e, ok := db.eng.(*embedded)
	if !ok {
		return nil, fmt.Errorf("warehouse: raw query on %s: %w", db.eng.name(), ErrNotEmbedded)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("warehouse: raw query %s: %w", abbrev(query), err)
	}
	res, err := e.conn.QueryResult(o.params, query, format)
	if err != nil {
		return nil, fmt.Errorf("warehouse: raw query %s: %w", abbrev(query), err)
	}
	return res, nil
}
