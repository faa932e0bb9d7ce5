package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
)

// benchTargets are the targets of `sentinel bench`, in the order its
// usage lists them.
var benchTargets = []command{
	{"analytics", "time the SQL library's queries over generated status events", cmdBenchAnalytics},
	{"ingest", "the ingestor end to end: a broker and an ingestor in child processes, offered rates, lag, CPU, zero loss", cmdBenchIngest},
	{"recover", "the same seeded fleet once per recovery controller, scored against the simulator's ground truth", cmdBenchRecover},
	{"broker", "QoS 1 fan-in against Sentinel's broker and Mosquitto, each in a child process", cmdBenchBroker},
}

func cmdBench(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 {
		for _, t := range benchTargets {
			if t.name == args[0] {
				return t.run(ctx, args[1:], out)
			}
		}
	}
	w := out
	if len(args) == 0 || (args[0] != "-h" && args[0] != "--help" && args[0] != "help") {
		w = os.Stderr
	}
	fmt.Fprint(w, "Usage: sentinel bench <target> [flags]\n\nTargets:\n")
	for _, t := range benchTargets {
		fmt.Fprintf(w, "  %-9s %s\n", t.name, t.summary)
	}
	fmt.Fprint(w, "\nRun `sentinel bench <target> -h` for a target's flags.\n")
	if w == out {
		return nil
	}
	return fmt.Errorf("bench: want a target: `sentinel bench analytics`, `ingest`, `recover` or `broker`")
}

// cmdBenchAnalytics is `sentinel bench analytics`.
func cmdBenchAnalytics(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench analytics", "[flags]")
	var c common
	c.addLog(fs, "warn")
	dsn := fs.String("dsn", "chdb://./data/bench", "warehouse to fill and query (its status_events grow by --rows)")
	rows := fs.Int64("rows", 10_000_000, "synthetic status events to generate first (0: use what is there)")
	perDevice := fs.Int64("events-per-device", 50, "events per device: sets the fleet size")
	runs := fs.Int("runs", 5, "timed runs per query, after one warm-up")
	queries := fs.String("queries", "regional_ranking,failure_clusters", "comma-separated library queries to time")
	optimize := fs.Bool("optimize", false, "OPTIMIZE TABLE status_events FINAL before timing (parts merged, as after background merges settle)")
	if err := parseFlags(fs, args); err != nil {
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
