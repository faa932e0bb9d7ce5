package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
)

func cmdBench(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "ingest" {
		return cmdBenchIngest(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "recover" {
		return cmdBenchRecover(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "broker" {
		return cmdBenchBroker(ctx, args[1:], out)
	}
	if len(args) == 0 || args[0] != "analytics" {
		return fmt.Errorf("bench: want a target: `sentinel bench analytics`, `ingest`, `recover` or `broker`")
	}
	fs := newFlags("bench analytics", "[flags]")
	var c common
	c.addLog(fs, "warn")
	dsn := fs.String("dsn", "chdb://./data/bench", "warehouse to fill and query (its status_events grow by --rows)")
	rows := fs.Int64("rows", 10_000_000, "synthetic status events to generate first (0: use what is there)")
	perDevice := fs.Int64("events-per-device", 50, "events per device: sets the fleet size")
	runs := fs.Int("runs", 5, "timed runs per query, after one warm-up")
	queries := fs.String("queries", "regional_ranking,failure_clusters", "comma-separated library queries to time")
	optimize := fs.Bool("optimize", false, "OPTIMIZE TABLE status_events FINAL before timing (parts merged, as after background merges settle)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	db, err := openWarehouse(ctx, *dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	if *rows > 0 {
		if err := analytics.Generate(ctx, db, analytics.GenerateSpec{Rows: *rows, EventsPerDevice: *perDevice}, out); err != nil {
			return err
		}
	}
	if *optimize {
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
	ts, err := analytics.Time(ctx, db, strings.Split(*queries, ","), analytics.Filter{}, *runs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-22s %8s %10s %10s %10s\n", "query", "rows", "min", "median", "max")
	for _, t := range ts {
		fmt.Fprintf(out, "%-22s %8d %10s %10s %10s\n", t.Query, t.Rows, t.Runs[0].Round(time.Millisecond), t.Median().Round(time.Millisecond), t.Runs[len(t.Runs)-1].Round(time.Millisecond))
	}
	return nil
}
