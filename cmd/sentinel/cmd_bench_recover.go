package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator"
)

// cmdBenchRecover runs the same seeded fleet once per controller, scores
// each run against the simulator's ground truth and prints the table, with
// the guarded controller's decision latency.
func cmdBenchRecover(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench recover", "[flags]")
	var c common
	c.addLog(fs, "warn")
	dsn := fs.String("dsn", "chdb://./data/bench-recover", "warehouse the runs write to")
	duration := fs.Duration("duration", 90*time.Second, "how long each run's fleet runs")
	list := fs.String("controllers", strings.Join(policy.ControllerNames(), ","), "comma-separated controllers to run, in order")
	backoff := fs.Duration("backoff", 2*time.Second, "the guarded policy's first backoff")
	var breaker recoverer.Config
	addBreakerFlags(fs, &breaker, time.Second)
	var fleet simulator.Config
	addFleetFlags(fs, &fleet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fleet.RunFor = *duration // --horizon's time scale
	log, err := c.logger()
	if err != nil {
		return err
	}
	db, err := openWarehouse(ctx, *dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	pc := policy.DefaultConfig()
	pc.BackoffBase = *backoff

	var scores []efficacy.Score
	var sentinelStats recoverer.Stats
	for _, name := range strings.Split(*list, ",") {
		ctl, err := policy.LookupController(name)
		if err != nil {
			return fmt.Errorf("bench recover: %w", err)
		}
		rc := recoverer.Config{Policy: pc, Decide: ctl.Decide, NoRebuild: true, BreakerInterval: -1}
		if !ctl.Baseline {
			rc = breaker
			rc.Policy, rc.Decide, rc.NoRebuild = pc, ctl.Decide, true
		}
		fmt.Fprintf(out, "run %s: %d devices for %s...\n", name, fleet.Devices, *duration)
		e, st, err := inproc.Trial(ctx, db, name, inproc.Config{Listen: "127.0.0.1:0", Fleet: fleet, Recoverer: rc, Logger: log}, *duration, guards(rc.Policy))
		if err != nil {
			return fleetFlagError(err)
		}
		if name == policy.SentinelController {
			sentinelStats = st
		}
		scores = append(scores, e)
	}
	fmt.Fprintf(out, "\n%s, %s, %d CPUs; seed %d, %d devices, bad build %q in %q (factor %g), %s per run\n\n",
		db.Engine(), runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), fleet.Seed, fleet.Devices, fleet.BadBuild, fleet.BadBuildRegion, fleet.BadBuildFactor, *duration)
	if err := efficacy.WriteTable(out, scores); err != nil {
		return err
	}
	if len(sentinelStats.SendLatency) > 0 {
		fmt.Fprintln(out)
		printLatency(out, sentinelStats)
	}
	return nil
}
