package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

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
	fs.StringVar(&cfg.Username, "username", "", "MQTT username for every device")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password for every device")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until interrupted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	cfg.Broker, cfg.Logger = c.broker, log
	fleet, err := simulator.New(cfg)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			s := fleet.Stats()
			fmt.Fprintf(out, "fleet stopped: %d messages published, %d commands received\n", s.Published, s.CommandsReceived)
			if err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		case <-tick.C:
			s := fleet.Stats()
			log.Info("fleet", "connected", s.Connected, "published", s.Published, "commands", s.CommandsReceived, "by_state", fmt.Sprint(s.ByState))
		}
	}
}

func cmdRecover(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("recover", "[flags]")
	var c common
	c.addDSN(fs)
	c.addBroker(fs)
	c.addLog(fs, "info")
	cfg := recoverer.Config{Policy: policy.DefaultConfig()}
	fs.StringVar(&cfg.ClientID, "client-id", "sentinel-recoverer", "MQTT client ID; one per recoverer")
	fs.StringVar(&cfg.Username, "username", "", "MQTT username")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password")
	fs.Float64Var(&cfg.Policy.RetryMinBattery, "retry-min-battery", cfg.Policy.RetryMinBattery, "battery % a retry needs unless charging")
	fs.Float64Var(&cfg.Policy.RollbackMinBattery, "rollback-min-battery", cfg.Policy.RollbackMinBattery, "rollback floor, battery %: never a rollback below it unless charging")
	fs.IntVar(&cfg.Policy.MinSignal, "min-signal", cfg.Policy.MinSignal, "weakest signal (dBm) worth a retry")
	fs.IntVar(&cfg.Policy.MaxRetries, "max-retries", cfg.Policy.MaxRetries, "retries per failure before a rollback")
	fs.DurationVar(&cfg.Policy.BackoffBase, "backoff", cfg.Policy.BackoffBase, "wait after the first retry; doubles per retry")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
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
	return r.Run(ctx)
}

// addFleetFlags maps the simulated fleet's settings onto flags, for both
// `simulate` and `run`.
func addFleetFlags(fs *flag.FlagSet, cfg *simulator.Config) {
	fs.IntVar(&cfg.Devices, "devices", simulator.DefaultDevices, "simulated devices, one MQTT connection each")
	fs.Int64Var(&cfg.Seed, "seed", simulator.DefaultSeed, "fleet seed: the same seed gives the same fleet and failures")
	fs.Float64Var(&cfg.FailureShare, "failure-share", simulator.DefaultFailureShare, "share of devices whose install ends partial or install_failed (negative: none)")
	fs.DurationVar(&cfg.TelemetryInterval, "telemetry-interval", simulator.DefaultTelemetryInterval, "time between two readings of one device")
	fs.DurationVar(&cfg.RolloutSpread, "rollout-spread", simulator.DefaultRolloutSpread, "devices start updating at random offsets within this window")
	fs.DurationVar(&cfg.StepDuration, "step", simulator.DefaultStepDuration, "mean time a device spends in each OTA phase")
	fs.IntVar(&cfg.ConnectRate, "connect-rate", simulator.DefaultConnectRate, "new connections per second while ramping up")
}
