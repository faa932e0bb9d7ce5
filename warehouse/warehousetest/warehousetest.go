// Package warehousetest opens a real, migrated warehouse for tests: the
// embedded ClickHouse engine in a temporary directory. There is no fake:
// tests run the same SQL production runs.
package warehousetest

import (
	"context"
	"testing"
	"time"

	"github.com/sentinel-iot/sentinel/warehouse"
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
