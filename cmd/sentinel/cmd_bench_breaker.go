package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/sentinel-iot/sentinel/bench/breaker"
	"github.com/sentinel-iot/sentinel/cohortstat"
)

// cmdBenchBreaker is `sentinel bench breaker`: flag wiring for
// bench/breaker, which holds the harness.
func cmdBenchBreaker(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench breaker", "[flags]")
	var c breaker.Config
	var v2 cohortstat.V2
	fs.IntVar(&c.Healthy, "healthy", breaker.DefaultHealthy, "healthy rollouts the false-halt rate is measured over")
	fs.IntVar(&c.Trials, "trials", breaker.DefaultTrials, "rollouts per bad-build factor and for the crash-loop build")
	fs.IntVar(&c.RegionTrials, "region-trials", breaker.DefaultRegionTrials, "rollouts with the default-factor bad build in each region")
	fs.IntVar(&c.Devices, "devices", breaker.DefaultDevices, "fleet size")
	fs.Float64Var(&c.CanaryShare, "canary", breaker.DefaultCanaryShare, "share of the fleet in the canary wave that installs the build")
	fs.IntVar(&c.Control, "control", breaker.DefaultControl, "devices of the rest of the fleet simulated on the old firmware (release-health baseline)")
	fs.DurationVar(&c.Spread, "spread", breaker.DefaultSpread, "simulated time over which the canary starts")
	fs.DurationVar(&c.Step, "step", breaker.DefaultStep, "mean simulated time of one OTA step")
	fs.DurationVar(&c.Look, "look", breaker.DefaultLook, "simulated time between two looks of the breaker")
	fs.DurationVar(&c.Duration, "duration", breaker.DefaultDuration, "simulated length of each rollout")
	fs.StringVar(&c.BadRegion, "bad-region", breaker.DefaultBadRegion, "region of the bad builds of the effect-size and crash-loop scenarios")
	fs.Float64Var(&c.CrashPerHour, "crash-rate", breaker.DefaultCrashPerHour, "the crash-loop build's crashes per device-hour")
	fs.Int64Var(&c.Seed, "seed", 1, "first rollout's seed")
	fs.IntVar(&c.Workers, "workers", runtime.NumCPU(), "rollouts run in parallel")
	fs.Float64Var(&v2.Alpha, "alpha", cohortstat.DefaultAlpha, "v2: family-wise false-halt rate")
	fs.Float64Var(&v2.Delta, "delta", cohortstat.DefaultDelta, "v2: tolerance on failure shares, absolute")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c.Rules = []cohortstat.Rule{v2.WithDefaults(), cohortstat.Wilson{}, cohortstat.AWS{}}
	start := time.Now()
	res, err := breaker.Run(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d devices, canary %.0f %%, %d CPUs, %d workers, %s\n\n", c.Devices, 100*c.CanaryShare, runtime.NumCPU(), c.Workers, time.Since(start).Round(time.Second))
	names := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		names[i] = r.Name()
	}
	return breaker.Write(out, names, res)
}
