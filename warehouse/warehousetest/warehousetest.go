// Package warehousetest opens a real, migrated warehouse for tests: the
// embedded ClickHouse engine in a temporary directory, and serves it over
// HTTP for the server engine's code path. There is no fake: tests run the
// same SQL production runs.
package warehousetest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/httpserver"
)

// Open returns a migrated embedded warehouse in t.TempDir(), closed when the
// test ends. The engine holds one directory per process, so tests that call
// Open must not run in parallel with each other. It fails the test, naming
// the install command, when libchdb is not installed.
func Open(t testing.TB) *warehouse.DB {
	t.Helper()
	return OpenDir(t, t.TempDir())
}

// OpenDir is Open on a given directory, for tests that reopen a warehouse
// to check what survived.
func OpenDir(t testing.TB, dir string) *warehouse.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := warehouse.Open(ctx, "chdb://"+dir, warehouse.Options{})
	if err != nil {
		t.Fatalf("open the embedded warehouse (run `make setup` or `go run ./cmd/sentinel setup` first if libchdb is missing): %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// ServeHTTP serves db over ClickHouse's HTTP interface (warehouse/httpserver,
// anonymous access) on a loopback port until the test ends, through wrap
// when it is not nil, and returns the http:// DSN clickhouse-go connects
// with: the server engine's code path, on a real engine.
func ServeHTTP(t testing.TB, db *warehouse.DB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	srv, err := httpserver.New(httpserver.Config{AllowAnonymous: true, TempDir: t.TempDir()}, db)
	if err != nil {
		t.Fatalf("warehouse HTTP server: %v", err)
	}
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-served })
	return "http://" + ln.Addr().String() + "/default"
}

// Gate holds the requests of a served warehouse (see ServeHTTP) while it
// is shut, as a warehouse that hangs does: the request reaches the server
// and no answer comes back until the gate opens (or the client gives up).
// The zero value is open. Safe for concurrent use.
type Gate struct {
	mu     sync.Mutex
	shut   chan struct{} // nil while open
	held   atomic.Int64
	served atomic.Int64
}

// Shut holds every request from now on.
func (g *Gate) Shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut == nil {
		g.shut = make(chan struct{})
	}
}

// Open lets the held requests and every later one through.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
}

// Held returns how many requests are being held now.
func (g *Gate) Held() int64 { return g.held.Load() }

// Served returns how many requests have passed the gate.
func (g *Gate) Served() int64 { return g.served.Load() }

// Wrap returns h behind the gate, for ServeHTTP's wrap.
func (g *Gate) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut != nil {
			g.held.Add(1)
			select {
			case <-shut:
			case <-r.Context().Done():
			}
			g.held.Add(-1)
			if r.Context().Err() != nil {
				return
			}
		}
		g.served.Add(1)
		h.ServeHTTP(w, r)
	})
}

// LogBuffer collects what a logger writes, for a test to read while the
// component under test still logs: a bytes.Buffer behind a lock.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; the logger calls it from any goroutine.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of everything written so far.
func (b *LogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}
