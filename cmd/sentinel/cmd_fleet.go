package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/quantile"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator"
)

func cmdSimulate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("simulate", "[flags]")
	var c common
	c.addBroker(fs)
	c.addLog(fs, "info")
	var cfg simulator.Config
	addFleetFlags(fs, &cfg)
	fs.StringVar(&cfg.Username, "username", "", "MQTT username for every connection (unless --credentials names one)")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password for --username")
	fs.StringVar(&cfg.CredentialsFile, "credentials", "", "fleet credentials file: lines of device-id,username,password; device-id * is shared by every device not listed; # comments")
	deviceKeyFile := fs.String("device-key-file", "", "derive each device's password (user name = device ID) from this key, as `sentinel broker --device-key-file` does")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until interrupted)")
	progress := fs.Duration("progress", 5*time.Second, "print a progress line this often: online devices, msg/s, devices by OTA state (0: never)")
	truthFile := fs.String("truth-file", "", "at the end, write the ground truth (what happened to each device, what would have fixed it, its verdict) to this file as JSON lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.RunFor = *duration // --horizon's time scale
	log, err := c.logger()
	if err != nil {
		return err
	}
	if *progress < 0 {
		return fmt.Errorf("--progress %v is negative", *progress)
	}
	cfg.Broker, cfg.Logger = c.broker, log
	if *deviceKeyFile != "" {
		key, err := readDeviceKey(*deviceKeyFile)
		if err != nil {
			return err
		}
		cfg.DeviceCredential = inproc.DerivedCredential(key)
	}
	fleet, err := simulator.New(cfg)
	if err != nil {
		return fleetFlagError(err)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	var tick <-chan time.Time
	if *progress > 0 {
		t := time.NewTicker(*progress)
		defer t.Stop()
		tick = t.C
	}
	start, prev, prevAt := time.Now(), fleet.Stats(), time.Now()
	for {
		select {
		case err := <-done:
			s := fleet.Stats()
			fmt.Fprintf(out, "fleet stopped after %s: %d messages published (%.0f msg/s), %d publish errors, %d refused with 0x97 and held, %d dropped from full device holds, %d commands received; %s\n",
				time.Since(start).Round(time.Second), s.Published, float64(s.Published)/time.Since(start).Seconds(),
				s.PublishErrors, s.Refused, s.HeldDropped, s.CommandsReceived, selfUsage())
			if *truthFile != "" {
				if werr := fleet.WriteGroundTruthFile(*truthFile); werr != nil {
					return werr
				}
				fmt.Fprintf(out, "ground truth of %d devices written to %s\n", s.Devices, *truthFile)
			}
			if err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		case now := <-tick:
			s := fleet.Stats()
			rate := float64(s.Published-prev.Published) / now.Sub(prevAt).Seconds()
			fmt.Fprintln(out, progressLine(now.Sub(start), s, rate))
			prev, prevAt = s, now
		}
	}
}

// progressLine renders one line of fleet progress.
func progressLine(elapsed time.Duration, s simulator.Stats, rate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5s  online %d/%d  conns %d/%d  %7.0f msg/s  errors %d  commands %d  |",
		elapsed.Round(time.Second), s.Connected, s.Devices, s.ConnsUp, s.Conns, rate, s.PublishErrors, s.CommandsReceived)
	for _, st := range []proto.State{proto.StateIdle, proto.StateDownloading, proto.StateVerifying, proto.StateInstalling,
		proto.StateRebooting, proto.StateUpdated, proto.StateDownloadFailed, proto.StateVerifyFailed, proto.StateInstallFailed,
		proto.StatePartial, proto.StateBootFailed, proto.StateRollingBack, proto.StateRolledBack, proto.StateBricked} {
		if n := s.ByState[st]; n > 0 {
			fmt.Fprintf(&b, " %s %d", st, n)
		}
	}
	return b.String()
}

// selfUsage reports the CPU time and peak resident memory of this process.
func selfUsage() string {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return "resource usage unknown: " + err.Error()
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return fmt.Sprintf("CPU %.1fs (user %.1fs, sys %.1fs), max RSS %d MiB", cpu.Seconds(),
		time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds(), ru.Maxrss/1024)
}

// addBreakerFlags adds the cohort breaker's flags, defaults from the
// recoverer module (README: "The cohort breaker").
func addBreakerFlags(fs *flag.FlagSet, cfg *recoverer.Config, interval time.Duration) {
	fs.DurationVar(&cfg.BreakerInterval, "breaker-interval", interval, "how often the cohort breaker queries the warehouse (negative: off)")
	fs.StringVar(&cfg.BreakerRule, "breaker-rule", recoverer.DefaultBreakerRule, "cohort breaker rule: v2 (anytime-valid test against the previous firmware in the region), wilson (Wilson bound over -breaker-threshold) or aws (failure share over -breaker-threshold)")
	fs.Float64Var(&cfg.BreakerAlpha, "breaker-alpha", recoverer.DefaultBreakerAlpha, "v2: false-halt rate over all cohorts at once, split across them")
	fs.Float64Var(&cfg.BreakerDelta, "breaker-delta", recoverer.DefaultBreakerDelta, "v2: tolerance on failure and quiet shares over the baseline, absolute")
	fs.Float64Var(&cfg.BreakerRateDelta, "breaker-rate-delta", recoverer.DefaultBreakerRateDelta, "v2: tolerance on crash and drain rates per device-hour over the baseline, relative")
	fs.DurationVar(&cfg.BreakerLookback, "breaker-lookback", recoverer.DefaultBreakerLookback, "how far back a cohort's devices count")
	fs.DurationVar(&cfg.BreakerQuietAfter, "breaker-quiet-after", recoverer.DefaultBreakerQuietAfter, "no reading for this long counts a device quiet (reporting-ratio check)")
	fs.IntVar(&cfg.BreakerMinSample, "breaker-min-sample", recoverer.DefaultBreakerMinSample, "settled devices (or device-hours) a cohort needs before the breaker judges it")
	fs.Float64Var(&cfg.BreakerThreshold, "breaker-threshold", recoverer.DefaultBreakerThreshold, "wilson and aws: failure rate over a cohort's settled devices that trips the breaker")
}

func cmdRecover(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("recover", "[flags]")
	var c common
	c.addDSN(fs)
	c.addBroker(fs)
	c.addLog(fs, "info")
	cfg := recoverer.Config{Policy: policy.DefaultConfig()}
	fs.StringVar(&cfg.ClientID, "client-id", recoverer.DefaultClientID, "MQTT client ID; one per recoverer")
	fs.StringVar(&cfg.Username, "username", "", "MQTT username")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password")
	fs.Float64Var(&cfg.Policy.RetryMinBattery, "retry-min-battery", cfg.Policy.RetryMinBattery, "battery % a retry needs unless charging")
	fs.Float64Var(&cfg.Policy.RollbackMinBattery, "rollback-min-battery", cfg.Policy.RollbackMinBattery, "rollback floor, battery %: never a rollback below it unless charging")
	fs.IntVar(&cfg.Policy.MinSignal, "min-signal", cfg.Policy.MinSignal, "weakest signal (dBm) worth a retry")
	fs.IntVar(&cfg.Policy.MaxRetries, "max-retries", cfg.Policy.MaxRetries, "retries per failure before a rollback")
	fs.DurationVar(&cfg.Policy.BackoffBase, "backoff", cfg.Policy.BackoffBase, "wait after the first retry; doubles per retry")
	addBreakerFlags(fs, &cfg, recoverer.DefaultBreakerInterval)
	fs.BoolVar(&cfg.NoRebuild, "no-rebuild", false, "start with no device state instead of rebuilding it from the warehouse")
	c.addCPUProfile(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	stopProfile, err := c.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	log, err := c.logger()
	if err != nil {
		return err
	}
	cfg.Broker, cfg.Logger = c.broker, log
	db, err := openWarehouse(ctx, c.dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := recoverer.New(cfg, db)
	if err != nil {
		return err
	}
	err = r.Run(ctx)
	printRecoverSummary(out, r.Stats())
	return err
}

// printRecoverSummary prints, when the recoverer stops, what it saw and
// did and how fast (see printLatency).
func printRecoverSummary(out io.Writer, st recoverer.Stats) {
	var commands uint64
	for _, n := range st.Commands {
		commands += n
	}
	fmt.Fprintf(out, "recoverer stopped: %d devices, %d status events, %d readings (%d coalesced), %d commands, %d published\n",
		st.Devices, st.Status, st.Telemetry, st.Coalesced, commands, st.Published)
	printLatency(out, st)
}

// printLatency prints the recoverer's decision latency: from a status
// received to its command sent, and to the broker's PUBACK, over the
// latest 65,536 commands (recoverer.Stats keeps that many).
func printLatency(out io.Writer, st recoverer.Stats) {
	for _, l := range []struct {
		what string
		ds   []time.Duration
	}{{"status received -> command sent", st.SendLatency}, {"status received -> command PUBACK", st.Latency}} {
		if len(l.ds) > 0 {
			ds := slices.Sorted(slices.Values(l.ds))
			fmt.Fprintf(out, "decision latency (%s), %d commands: p50 %s, p99 %s, max %s\n", l.what, len(l.ds),
				quantile.Sorted(ds, 0.5).Round(time.Microsecond), quantile.Sorted(ds, 0.99).Round(time.Microsecond), quantile.Sorted(ds, 1).Round(time.Microsecond))
		}
	}
}

// addFleetFlags maps the simulated fleet's settings onto flags, for both
// `simulate` and `run`.
func addFleetFlags(fs *flag.FlagSet, cfg *simulator.Config) {
	fs.IntVar(&cfg.Devices, "devices", simulator.DefaultDevices, "simulated devices")
	fs.IntVar(&cfg.Conns, "conns", 0, "MQTT connections the devices share, round-robin (0: one connection per device, each with its own Last Will)")
	fs.Int64Var(&cfg.Seed, "seed", simulator.DefaultSeed, "fleet seed: the same seed gives the same fleet, failures and telemetry")
	fs.Float64Var(&cfg.FailureShare, "failure-share", simulator.DefaultFailureShare, "share of devices whose install fails (partial, install_failed, verify_failed, boot_failed) before regional bias (negative: none)")
	fs.DurationVar(&cfg.TelemetryInterval, "telemetry-interval", simulator.DefaultTelemetryInterval, "time between two readings of one device")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target telemetry msg/s for the whole fleet; sets the interval to devices/rate (0: use --telemetry-interval)")
	fs.StringVar(&cfg.FromFirmware, "from-firmware", simulator.DefaultFromFirmware, "firmware the devices run before the rollout")
	fs.StringVar(&cfg.ToFirmware, "to-firmware", simulator.DefaultToFirmware, "firmware the rollout installs")
	cfg.Waves = simulator.DefaultWaves()
	fs.Var(percentages(&cfg.Waves), "waves", "rollout waves: cumulative percentages of the fleet, increasing, ending at 100")
	fs.DurationVar(&cfg.WaveInterval, "wave-interval", 0, "time between the starts of two waves (0: --rollout-spread)")
	fs.DurationVar(&cfg.RolloutSpread, "rollout-spread", simulator.DefaultRolloutSpread, "devices of a wave start updating at random offsets within this window")
	fs.DurationVar(&cfg.StepDuration, "step", simulator.DefaultStepDuration, "mean time a device spends in each OTA phase")
	fs.StringVar(&cfg.BadBuild, "bad-build", "", "firmware version that fails far more often; must be --to-firmware (empty: none)")
	fs.StringVar(&cfg.BadBuildRegion, "bad-build-region", "", "limit the bad build to this region (empty: every region)")
	fs.Float64Var(&cfg.BadBuildFactor, "bad-build-factor", simulator.DefaultBadBuildFactor, "how many times more often the bad build fails (at least 1)")
	fs.Var((*weightsFlag)(&cfg.RegionWeights), "region-weights", "override region weights, e.g. eu-west=0.3,ap-south=0.2; regions: eu-west eu-north us-east us-west sa-east ap-south ap-northeast af-south")
	fs.Float64Var(&cfg.TimeScale, "time-scale", simulator.DefaultTimeScale, "device physics (battery, chargers, temperature, uptime) run this many times faster than the clock")
	fs.DurationVar(&cfg.Horizon, "horizon", 0, fmt.Sprintf("device time the run's --duration covers, e.g. %v for an efficacy run that sees overnight charging; sets --time-scale (0: --time-scale decides)", simulator.DefaultEfficacyHorizon))
	fs.IntVar(&cfg.ConnectRate, "connect-rate", simulator.DefaultConnectRate, "devices coming online per second while ramping up")
}

// fleetFlags names the flag of each simulator.Config field.
var fleetFlags = map[string]string{
	"Broker": "broker", "Devices": "devices", "Conns": "conns", "Seed": "seed", "FailureShare": "failure-share",
	"TelemetryInterval": "telemetry-interval", "Rate": "rate", "FromFirmware": "from-firmware", "ToFirmware": "to-firmware",
	"Waves": "waves", "WaveInterval": "wave-interval", "RolloutSpread": "rollout-spread", "StepDuration": "step",
	"BadBuild": "bad-build", "BadBuildRegion": "bad-build-region", "BadBuildFactor": "bad-build-factor",
	"RegionWeights": "region-weights", "TimeScale": "time-scale", "Horizon": "horizon", "RunFor": "duration", "ConnectRate": "connect-rate",
	"Username": "username", "Password": "password", "CredentialsFile": "credentials",
}

// fleetFlagError rewrites a simulator config error to name the flag.
func fleetFlagError(err error) error {
	var ce *simulator.ConfigError
	if errors.As(err, &ce) {
		if name, ok := fleetFlags[ce.Field]; ok {
			return fmt.Errorf("--%s: %s", name, ce.Reason)
		}
	}
	return err
}

// weightsFlag is a comma-separated list of region=weight.
type weightsFlag map[string]float64

func (w *weightsFlag) String() string {
	if w == nil || len(*w) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*w)) {
		parts = append(parts, k+"="+strconv.FormatFloat((*w)[k], 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

func (w *weightsFlag) Set(s string) error {
	out := make(map[string]float64)
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%q is not region=weight", part)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("weight %q of %q is not a number", val, name)
		}
		out[name] = v
	}
	*w = out
	return nil
}
