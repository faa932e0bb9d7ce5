package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sentinel-iot/sentinel/bench/querytime"
)

// benchTargets are the targets of `sentinel bench`, in the order its
// usage lists them.
var benchTargets = []command{
	{"analytics", "time the SQL library's queries over generated status events", cmdBenchAnalytics},
	{"ingest", "the ingestor end to end: a broker and an ingestor in child processes, offered rates, lag, CPU, zero loss", cmdBenchIngest},
	{"recover", "the same seeded fleet once per recovery controller, scored against the simulator's ground truth", cmdBenchRecover},
	{"broker", "QoS 1 fan-in against Sentinel's broker and Mosquitto, each in a child process", cmdBenchBroker},
	{"breaker", "the cohort breaker's rules side by side over many simulated rollouts, no broker: false halts, time to detect", cmdBenchBreaker},
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
	return fmt.Errorf("bench: want a target: `sentinel bench analytics`, `ingest`, `recover`, `broker` or `breaker`")
}

// cmdBenchAnalytics is `sentinel bench analytics` (bench/querytime says
// what it measures).
func cmdBenchAnalytics(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench analytics", "[flags]")
	var c common
	c.addLog(fs, "warn")
	cfg := querytime.DefaultConfig()
	dsn := fs.String("dsn", "chdb://./data/bench", "warehouse to fill and query (its status_events grow by --rows)")
	fs.Int64Var(&cfg.Rows, "rows", cfg.Rows, "synthetic status events to generate first (0: use what is there)")
	fs.Int64Var(&cfg.EventsPerDevice, "events-per-device", cfg.EventsPerDevice, "events per device: sets the fleet size")
	fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "timed runs per query, after one warm-up")
	queries := fs.String("queries", strings.Join(cfg.Queries, ","), "comma-separated library queries to time")
	fs.BoolVar(&cfg.Optimize, "optimize", cfg.Optimize, "OPTIMIZE TABLE status_events FINAL before timing (parts merged, as after background merges settle)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Queries = strings.Split(*queries, ",")
	db, err := openWarehouse(ctx, *dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	return querytime.Run(ctx, db, cfg, out)
}
