// Package querytime times the analytics library's queries over generated
// status events, as `sentinel bench analytics`: it fills the warehouse
// with synthetic events, optionally merges their parts, and prints each
// query's rows and its fastest, median and slowest run.
package querytime

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Config is one bench run.
type Config struct {
	// Rows is how many synthetic status events to generate first; 0 uses
	// what the warehouse holds.
	Rows int64
	// EventsPerDevice sets the generated fleet's size.
	EventsPerDevice int64
	// Runs is the timed runs per query, after one warm-up.
	Runs int
	// Queries names the library queries to time.
	Queries []string
	// Optimize merges status_events' parts first (OPTIMIZE TABLE ...
	// FINAL), as after background merges settle.
	Optimize bool
}

// DefaultConfig is the bench `sentinel bench analytics` runs by default:
// ten million events, the two heaviest queries of the library.
func DefaultConfig() Config {
	return Config{Rows: 10_000_000, EventsPerDevice: 50, Runs: 5, Queries: []string{"regional_ranking", "failure_clusters"}}
}

// Run runs the bench on db and prints the timings to out.
func Run(ctx context.Context, db *warehouse.DB, cfg Config, out io.Writer) error {
	if cfg.Rows > 0 {
		if err := analytics.Generate(ctx, db, analytics.GenerateSpec{Rows: cfg.Rows, EventsPerDevice: cfg.EventsPerDevice}, out); err != nil {
			return err
		}
	}
	if cfg.Optimize {
		start := time.Now()
		if err := db.Exec(ctx, "OPTIMIZE TABLE status_events FINAL"); err != nil {
			return err
		}
		fmt.Fprintf(out, "optimized in %s\n", time.Since(start).Round(time.Millisecond))
	}
	total, err := db.QueryInt(ctx, "SELECT count() FROM status_events")
	if err != nil {
		return err
	}
	parts, err := db.QueryInt(ctx, "SELECT count() FROM system.parts WHERE active AND table = 'status_events' AND database = currentDatabase()")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s, %d status_events rows in %d parts, %s, %d CPUs\n", db.Engine(), total, parts, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU())
	ts, err := analytics.Time(ctx, db, cfg.Queries, analytics.Filter{}, cfg.Runs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-22s %8s %10s %10s %10s\n", "query", "rows", "min", "median", "max")
	for _, t := range ts {
		fmt.Fprintf(out, "%-22s %8d %10s %10s %10s\n", t.Query, t.Rows, t.Runs[0].Round(time.Millisecond), t.Median().Round(time.Millisecond), t.Runs[len(t.Runs)-1].Round(time.Millisecond))
	}
	return nil
}
