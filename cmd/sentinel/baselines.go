package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
)

// recoverConfigDefaults is the recoverer configuration of `sentinel run`:
// the policy defaults, with a backoff short enough that a one-minute demo
// sees retries run their course.
func recoverConfigDefaults() recoverer.Config {
	pc := policy.DefaultConfig()
	pc.BackoffBase = 2 * time.Second
	return recoverer.Config{Policy: pc}
}

// controllerConfig is the recoverer configuration for a named controller:
// the defaults of `sentinel run`, with a baseline's decision rule and no
// cohort breaker for a baseline (the breaker is part of Sentinel).
func controllerConfig(name string) (recoverer.Config, error) {
	c, err := policy.LookupController(name)
	if err != nil {
		return recoverer.Config{}, fmt.Errorf("--controller: %w", err)
	}
	rc := recoverConfigDefaults()
	rc.Decide = c.Decide
	if c.Baseline {
		rc.BreakerInterval = -1
	}
	return rc, nil
}

// guards are the policy's battery thresholds, as the scorer's safety
// envelope.
func guards(pc policy.Config) efficacy.Guards {
	pc = pc.WithDefaults()
	return efficacy.Guards{RetryMinBattery: pc.RetryMinBattery, RollbackMinBattery: pc.RollbackMinBattery, ChargingMinBattery: pc.ChargingMinBattery}
}

// runBaselines runs `sentinel run` once per baseline controller, each in a
// child process with the parent's flags (so the same seed, fleet and
// duration) and an embedded warehouse of its own in a scratch directory:
// the runs reuse device IDs and sequence numbers, so sharing the parent's
// warehouse would overwrite its data. It returns the scores the children
// wrote; the scratch directory is removed unless a run failed.
func runBaselines(ctx context.Context, baselines []policy.Controller, args []string, out io.Writer) ([]efficacy.Score, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the sentinel binary for the baseline runs: %w", err)
	}
	dir, err := os.MkdirTemp("", "sentinel-baselines-")
	if err != nil {
		return nil, fmt.Errorf("make a scratch directory for the baseline runs: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	var scores []efficacy.Score
	for _, c := range baselines {
		name := c.Name
		start := time.Now()
		fmt.Fprintf(out, "  baseline %-20s running...", name)
		scoreFile := filepath.Join(dir, name+".json")
		logFile := filepath.Join(dir, name+".log")
		// The flag package keeps the last value of a repeated flag, so the
		// overrides go after the parent's own flags.
		childArgs := append(append([]string{"run"}, args...),
			"--controller", name, "--baselines=", "--score-json", scoreFile,
			"--dsn", "chdb://"+filepath.Join(dir, name), "--listen", "127.0.0.1:0", "--warehouse-listen=", "--log-level", "error")
		log, err := os.Create(logFile)
		if err != nil {
			return scores, fmt.Errorf("baseline %s: %w", name, err)
		}
		cmd := exec.CommandContext(ctx, exe, childArgs...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = append(os.Environ(), envRunAsMain+"=1")
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 30 * time.Second
		err = cmd.Run()
		log.Close()
		if err != nil {
			keep = true
			fmt.Fprintln(out)
			return scores, fmt.Errorf("baseline %s: %w (its output: %s)", name, err, logFile)
		}
		s, err := efficacy.ReadScoreFile(scoreFile)
		if err != nil {
			keep = true
			fmt.Fprintln(out)
			return scores, fmt.Errorf("baseline %s: %w (its output: %s)", name, err, logFile)
		}
		fmt.Fprintf(out, " done in %s: %d / %d recovered, %d bricked by a command\n",
			time.Since(start).Round(time.Second), s.Recovered, s.Recoverable, s.Bricked)
		scores = append(scores, s)
	}
	return scores, nil
}

// envRunAsMain makes a test binary behave as the sentinel binary (see
// TestMain), so runBaselines works under `go test` too.
const envRunAsMain = "SENTINEL_RUN_AS_MAIN"
