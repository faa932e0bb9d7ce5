package chdb

import (
	"fmt"
	"time"
	"unsafe"
)

// Result is a query's output with what the engine reports about the run,
// for servers that account for rows and time (the HTTP server's metrics).
type Result struct {
	// Data is the output in the requested format.
	Data []byte
	// RowsRead is the number of rows the engine read; for an INSERT it is
	// the number of rows inserted.
	RowsRead uint64
	// Elapsed is the engine's own run time.
	Elapsed time.Duration
}

// QueryResult is QueryParams that also returns the engine's statistics.
// Parameters are bound and the query run under one lock, as QueryParams
// does, so concurrent callers never see each other's parameters.
func (c *Conn) QueryResult(params map[string]string, query, format string) (*Result, error) {
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
	res := chdbQuery(*c.conn, query, format)
	if res == nil {
		return &Result{}, nil
	}
	defer chdbDestroyQueryResult(res)
	if msg := chdbResultError(res); msg != "" {
		return nil, &Error{Message: msg}
	}
	out := &Result{
		RowsRead: chdbResultRowsRead(res),
		Elapsed:  time.Duration(chdbResultElapsed(res) * float64(time.Second)),
	}
	if n, buf := chdbResultLength(res), chdbResultBuffer(res); n > 0 && buf != nil {
		out.Data = make([]byte, n)
		copy(out.Data, unsafe.Slice((*byte)(buf), n))
	}
	return out, nil
}
