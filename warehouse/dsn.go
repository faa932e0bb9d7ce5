package warehouse

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// DefaultDSN is where the embedded warehouse lives when nothing says otherwise.
const DefaultDSN = "chdb://./data/warehouse"

// Kind is which engine a DSN selects.
type Kind int

// The engines.
const (
	// Embedded is the in-process engine, libchdb.
	Embedded Kind = iota + 1
	// Server is a ClickHouse server reached with clickhouse-go.
	Server
)

// DSN is a parsed data source name.
type DSN struct {
	// Kind is the engine.
	Kind Kind
	// Path is the data directory of an embedded engine, absolute.
	Path string
	// URL is the clickhouse-go DSN of a server.
	URL string
}

// ParseDSN parses chdb:///abs/dir, chdb://relative/dir, clickhouse://...,
// http://... and https://... DSNs.
func ParseDSN(dsn string) (DSN, error) {
	switch {
	case strings.HasPrefix(dsn, "chdb://"):
		p := strings.TrimPrefix(dsn, "chdb://")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if p == "" {
			return DSN{}, fmt.Errorf("warehouse: DSN %q has no directory (want chdb:///path/to/dir)", dsn)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return DSN{}, fmt.Errorf("warehouse: resolve %q: %w", p, err)
		}
		return DSN{Kind: Embedded, Path: abs}, nil
	case strings.HasPrefix(dsn, "clickhouse://"), strings.HasPrefix(dsn, "http://"), strings.HasPrefix(dsn, "https://"):
		if _, err := url.Parse(dsn); err != nil {
			return DSN{}, fmt.Errorf("warehouse: parse DSN: %w", err)
		}
		return DSN{Kind: Server, URL: dsn}, nil
	}
	return DSN{}, fmt.Errorf("warehouse: DSN %q: unknown scheme (want chdb://, clickhouse://, http:// or https://)", redact(dsn))
}

// redact hides a password in a DSN for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
