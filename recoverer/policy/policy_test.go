package policy_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// good is fresh telemetry that allows every action.
func good() policy.Telemetry {
	return policy.Telemetry{Known: true, BatteryPct: 80, RSSI: -70, At: t0.Add(-time.Second)}
}

func tel(battery float64, charging bool, rssi int) policy.Telemetry {
	return policy.Telemetry{Known: true, BatteryPct: battery, Charging: charging, RSSI: rssi, At: t0.Add(-time.Second)}
}

func in(state proto.State, t policy.Telemetry, retries int) policy.Input {
	i := policy.Input{State: state, Firmware: "1.0.0", TargetFirmware: "1.1.0", Telemetry: t, Retries: retries, Now: t0}
	if retries > 0 {
		i.LastCommand = t0.Add(-time.Hour)
	}
	if state == proto.StateUpdated {
		i.Firmware = i.TargetFirmware // a fallback sets it back by hand
	}
	return i
}

// fallback is a device reporting updated on its old version.
func fallback(t policy.Telemetry, retries int) policy.Input {
	i := in(proto.StateUpdated, t, retries)
	i.Firmware = "1.0.0"
	return i
}

func TestDecide(t *testing.T) {
	cfg := policy.DefaultConfig()
	for _, tc := range []struct {
		name   string
		in     policy.Input
		action proto.Action
		reason string
	}{
		// Healthy and transient states: nothing to do.
		{"idle", in(proto.StateIdle, good(), 0), proto.ActionNone, policy.ReasonHealthy},
		{"updated", in(proto.StateUpdated, good(), 0), proto.ActionNone, policy.ReasonHealthy},
		{"rolled back", in(proto.StateRolledBack, good(), 0), proto.ActionNone, policy.ReasonHealthy},
		{"downloading", in(proto.StateDownloading, good(), 0), proto.ActionNone, policy.ReasonInProgress},
		{"verifying", in(proto.StateVerifying, good(), 0), proto.ActionNone, policy.ReasonInProgress},
		{"installing", in(proto.StateInstalling, good(), 0), proto.ActionNone, policy.ReasonInProgress},
		{"rebooting", in(proto.StateRebooting, good(), 0), proto.ActionNone, policy.ReasonInProgress},
		{"rolling back", in(proto.StateRollingBack, good(), 0), proto.ActionNone, policy.ReasonInProgress},
		{"offline", in(proto.StateOffline, good(), 0), proto.ActionNone, policy.ReasonOffline},
		{"unknown state", in("melted", good(), 0), proto.ActionNone, policy.ReasonUnknownState},
		{"healthy without telemetry", in(proto.StateUpdated, policy.Telemetry{}, 0), proto.ActionNone, policy.ReasonHealthy},

		// Bricked: halt, whatever else is true.
		{"bricked", in(proto.StateBricked, good(), 0), proto.ActionHalt, policy.ReasonBricked},
		{"bricked without telemetry", in(proto.StateBricked, policy.Telemetry{}, 0), proto.ActionHalt, policy.ReasonBricked},
		{"bricked with open command", func() policy.Input {
			i := in(proto.StateBricked, good(), 1)
			i.CommandOpen = true
			return i
		}(), proto.ActionHalt, policy.ReasonBricked},

		// Retry.
		{"partial retried", in(proto.StatePartial, good(), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"install_failed retried", in(proto.StateInstallFailed, good(), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"download_failed retried", in(proto.StateDownloadFailed, good(), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"retry at exactly 30%", in(proto.StatePartial, tel(30, false, -70), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"retry on low battery while charging", in(proto.StatePartial, tel(20, true, -70), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"charging under 20% is no guard", in(proto.StatePartial, tel(19.9, true, -70), 0), proto.ActionDefer, policy.ReasonBatteryLow},
		{"download retry at exactly -100 dBm", in(proto.StateDownloadFailed, tel(80, false, -100), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"second retry after backoff", in(proto.StatePartial, good(), 1), proto.ActionRetry, policy.ReasonRetryable},
		{"last retry", in(proto.StatePartial, good(), 2), proto.ActionRetry, policy.ReasonRetryable},

		// Defer a retry.
		{"battery low", in(proto.StatePartial, tel(29.9, false, -70), 0), proto.ActionDefer, policy.ReasonBatteryLow},
		{"battery empty", in(proto.StateInstallFailed, tel(0, false, -70), 1), proto.ActionDefer, policy.ReasonBatteryLow},
		{"download_failed on weak signal", in(proto.StateDownloadFailed, tel(80, false, -101), 0), proto.ActionDefer, policy.ReasonWeakSignal},
		{"partial on weak signal (no download)", in(proto.StatePartial, tel(80, false, -120), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"install_failed on weak signal (no download)", in(proto.StateInstallFailed, tel(80, false, -120), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"weak signal while charging", in(proto.StateDownloadFailed, tel(80, true, -130), 0), proto.ActionDefer, policy.ReasonWeakSignal},
		{"battery low beats weak signal", in(proto.StateDownloadFailed, tel(10, false, -130), 0), proto.ActionDefer, policy.ReasonBatteryLow},

		// Never act blind.
		{"no telemetry", in(proto.StatePartial, policy.Telemetry{}, 0), proto.ActionDefer, policy.ReasonNoTelemetry},
		{"no telemetry at max retries", in(proto.StatePartial, policy.Telemetry{}, 3), proto.ActionDefer, policy.ReasonNoTelemetry},
		{"no telemetry on boot_failed", in(proto.StateBootFailed, policy.Telemetry{}, 0), proto.ActionDefer, policy.ReasonNoTelemetry},
		{"stale telemetry", in(proto.StatePartial, policy.Telemetry{Known: true, BatteryPct: 90, RSSI: -60, At: t0.Add(-6 * time.Minute)}, 0), proto.ActionDefer, policy.ReasonStaleTelemetry},
		{"telemetry of unknown age is used", in(proto.StatePartial, policy.Telemetry{Known: true, BatteryPct: 90, RSSI: -60}, 0), proto.ActionRetry, policy.ReasonRetryable},

		// Rollback after the last retry, above the floor only.
		{"retries exhausted, rollback", in(proto.StatePartial, good(), 3), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"retries exhausted at exactly 40%", in(proto.StatePartial, tel(40, false, -70), 3), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"retries exhausted below floor", in(proto.StatePartial, tel(39.9, false, -70), 3), proto.ActionDefer, policy.ReasonBelowRollbackFloor},
		{"retries exhausted at 35% (retry ok, rollback not)", in(proto.StatePartial, tel(35, false, -70), 3), proto.ActionDefer, policy.ReasonBelowRollbackFloor},
		{"retries exhausted below floor while charging", in(proto.StatePartial, tel(25, true, -70), 3), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"retries exhausted, charging on an empty battery", in(proto.StatePartial, tel(3, true, -70), 3), proto.ActionDefer, policy.ReasonBelowRollbackFloor},
		{"retries exhausted on weak signal", in(proto.StateDownloadFailed, tel(80, false, -130), 3), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"over max retries", in(proto.StateInstallFailed, good(), 7), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"boot_failed rolls back", in(proto.StateBootFailed, good(), 0), proto.ActionRollback, policy.ReasonBootFailed},
		{"boot_failed under both guards", in(proto.StateBootFailed, tel(12, false, -70), 0), proto.ActionDefer, policy.ReasonBatteryLow},
		{"boot_failed under the floor retries", in(proto.StateBootFailed, tel(35, false, -70), 0), proto.ActionRetry, policy.ReasonBootFailed},
		{"boot_failed at exactly the floor rolls back", in(proto.StateBootFailed, tel(40, false, -70), 1), proto.ActionRollback, policy.ReasonBootFailed},
		{"boot_failed under the floor, retries spent", in(proto.StateBootFailed, tel(35, false, -70), 3), proto.ActionDefer, policy.ReasonBelowRollbackFloor},
		{"boot_failed under the floor in backoff", func() policy.Input {
			i := in(proto.StateBootFailed, tel(35, false, -70), 1)
			i.LastCommand = t0.Add(-time.Second)
			return i
		}(), proto.ActionNone, policy.ReasonBackoff},
		{"boot_failed in a tripped cohort rolls back, never retries", func() policy.Input {
			i := in(proto.StateBootFailed, tel(35, false, -70), 0)
			i.CohortTripped = true
			return i
		}(), proto.ActionDefer, policy.ReasonBelowRollbackFloor},

		// Retries whose download failed flashed nothing: they spend the
		// download budget before the flash budget.
		{"failed downloads do not spend the retry budget", func() policy.Input {
			i := in(proto.StateDownloadFailed, tel(80, false, -80), 4)
			i.DownloadFailures = 2
			return i
		}(), proto.ActionRetry, policy.ReasonRetryable},
		{"failed downloads spend their own budget", func() policy.Input {
			i := in(proto.StateDownloadFailed, tel(80, false, -80), 3)
			i.DownloadFailures = 3
			return i
		}(), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"failed downloads spent, under the floor, retries on", func() policy.Input {
			i := in(proto.StateDownloadFailed, tel(35, false, -80), 3)
			i.DownloadFailures = 3
			return i
		}(), proto.ActionRetry, policy.ReasonRetryable},
		{"failed downloads spent, under the floor, flash retries spent too", func() policy.Input {
			i := in(proto.StateDownloadFailed, tel(35, false, -80), 6)
			i.DownloadFailures = 5
			return i
		}(), proto.ActionDefer, policy.ReasonBelowRollbackFloor},
		{"flash failures still spend the budget", func() policy.Input {
			i := in(proto.StateInstallFailed, tel(80, false, -80), 4)
			i.DownloadFailures = 1
			return i
		}(), proto.ActionRollback, policy.ReasonRetriesExhausted},

		// verify_failed: the old firmware still runs; download again.
		{"verify_failed retried", in(proto.StateVerifyFailed, good(), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"verify_failed on weak signal", in(proto.StateVerifyFailed, tel(80, false, -110), 0), proto.ActionDefer, policy.ReasonWeakSignal},

		// Success only on the target version: a silent fallback reopens.
		{"silent fallback retried", func() policy.Input {
			i := in(proto.StateUpdated, good(), 0)
			i.Firmware = "1.0.0" // target is 1.1.0
			return i
		}(), proto.ActionRetry, policy.ReasonSilentFallback},
		{"silent fallback on low battery", fallback(tel(10, false, -70), 0), proto.ActionDefer, policy.ReasonBatteryLow},
		{"silent fallback, budget spent", fallback(good(), 3), proto.ActionRollback, policy.ReasonRetriesExhausted},
		{"silent fallback without telemetry", fallback(policy.Telemetry{}, 0), proto.ActionDefer, policy.ReasonNoTelemetry},
		{"updated on target", func() policy.Input {
			i := in(proto.StateUpdated, good(), 2)
			i.Firmware = "1.1.0"
			return i
		}(), proto.ActionNone, policy.ReasonHealthy},
		{"updated, target unknown", func() policy.Input {
			i := in(proto.StateUpdated, good(), 0)
			i.TargetFirmware = ""
			return i
		}(), proto.ActionNone, policy.ReasonHealthy},

		// Cohort breaker: no retries; roll back, guards still apply.
		{"breaker tripped, partial rolled back", func() policy.Input {
			i := in(proto.StatePartial, good(), 0)
			i.CohortTripped = true
			return i
		}(), proto.ActionRollback, policy.ReasonCohortTripped},
		{"breaker tripped, below floor", func() policy.Input {
			i := in(proto.StatePartial, tel(39.9, false, -70), 0)
			i.CohortTripped = true
			return i
		}(), proto.ActionDefer, policy.ReasonBelowRollbackFloor},
		{"breaker tripped, charging below floor", func() policy.Input {
			i := in(proto.StatePartial, tel(25, true, -70), 0)
			i.CohortTripped = true
			return i
		}(), proto.ActionRollback, policy.ReasonCohortTripped},
		{"breaker tripped, healthy device untouched", func() policy.Input {
			i := in(proto.StateUpdated, good(), 0)
			i.Firmware, i.CohortTripped = "1.1.0", true
			return i
		}(), proto.ActionNone, policy.ReasonHealthy},

		// Silence and stuck states after a command: escalate.
		{"silent after command", func() policy.Input {
			i := in(proto.StatePartial, good(), 1)
			i.CommandOpen, i.LastHeard = true, t0.Add(-2*time.Minute-time.Millisecond)
			return i
		}(), proto.ActionHalt, policy.ReasonSilentAfterCommand},
		{"silent exactly at the timeout", func() policy.Input {
			i := in(proto.StatePartial, good(), 1)
			i.CommandOpen, i.LastHeard = true, t0.Add(-2*time.Minute)
			return i
		}(), proto.ActionNone, policy.ReasonCommandOpen},
		{"silent while offline", func() policy.Input {
			i := in(proto.StateOffline, good(), 1)
			i.CommandOpen, i.LastHeard = true, t0.Add(-time.Hour)
			return i
		}(), proto.ActionHalt, policy.ReasonSilentAfterCommand},
		{"silent without a command is no escalation", func() policy.Input {
			i := in(proto.StatePartial, good(), 0)
			i.LastHeard = t0.Add(-time.Hour)
			return i
		}(), proto.ActionRetry, policy.ReasonRetryable},
		{"stuck rebooting", func() policy.Input {
			i := in(proto.StateRebooting, good(), 1)
			i.CommandOpen, i.LastHeard, i.StateSince = true, t0, t0.Add(-4*time.Minute)
			return i
		}(), proto.ActionHalt, policy.ReasonStuckAfterCommand},
		{"downloading within its timeout", func() policy.Input {
			i := in(proto.StateDownloading, good(), 1)
			i.CommandOpen, i.LastHeard, i.StateSince = true, t0, t0.Add(-9*time.Minute)
			return i
		}(), proto.ActionNone, policy.ReasonInProgress},
		{"silence after a halt is expected", func() policy.Input {
			i := in(proto.StatePartial, good(), 1)
			i.CommandOpen, i.Halted, i.LastHeard = true, true, t0.Add(-time.Hour)
			return i
		}(), proto.ActionNone, policy.ReasonHalted},

		// Halt.
		{"rollback failed", func() policy.Input {
			i := in(proto.StatePartial, good(), 3)
			i.Rollbacks = 1
			return i
		}(), proto.ActionHalt, policy.ReasonRollbackFailed},

		// One command at a time; hands off after a halt.
		{"command open", func() policy.Input {
			i := in(proto.StatePartial, good(), 1)
			i.CommandOpen = true
			return i
		}(), proto.ActionNone, policy.ReasonCommandOpen},
		{"halted", func() policy.Input {
			i := in(proto.StatePartial, good(), 0)
			i.Halted = true
			return i
		}(), proto.ActionNone, policy.ReasonHalted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := policy.Decide(tc.in, cfg)
			require.Equal(t, tc.action, got.Action, "reason %q", got.Reason)
			require.Equal(t, tc.reason, got.Reason)
			if got.Reason != policy.ReasonBackoff {
				require.True(t, got.Until.IsZero(), "Until is set only for a backoff")
			}
		})
	}
}

func TestDecideBackoff(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Jitter = -1 // exact backoffs; TestJitter covers the spread
	for _, tc := range []struct {
		name    string
		retries int
		since   time.Duration // since the last command
		want    proto.Action
		until   time.Duration // after the last command, for a backoff
	}{
		{"first retry waits for nothing", 0, 0, proto.ActionRetry, 0},
		{"after retry 1, before 5s", 1, 4 * time.Second, proto.ActionNone, 5 * time.Second},
		{"after retry 1, at 5s", 1, 5 * time.Second, proto.ActionRetry, 0},
		{"after retry 2, before 10s", 2, 9 * time.Second, proto.ActionNone, 10 * time.Second},
		{"after retry 2, at 10s", 2, 10 * time.Second, proto.ActionRetry, 0},
		{"just sent", 1, 0, proto.ActionNone, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := in(proto.StatePartial, good(), tc.retries)
			i.LastCommand = t0.Add(-tc.since)
			got := policy.Decide(i, cfg)
			require.Equal(t, tc.want, got.Action, "reason %q", got.Reason)
			if tc.want == proto.ActionNone {
				require.Equal(t, policy.ReasonBackoff, got.Reason)
				require.Equal(t, i.LastCommand.Add(tc.until), got.Until)
			}
		})
	}

	t.Run("backoff comes before the battery check", func(t *testing.T) {
		i := in(proto.StatePartial, tel(5, false, -70), 1)
		i.LastCommand = t0
		require.Equal(t, policy.ReasonBackoff, policy.Decide(i, cfg).Reason)
	})
	t.Run("no backoff before the rollback", func(t *testing.T) {
		i := in(proto.StatePartial, good(), 3)
		i.LastCommand = t0
		require.Equal(t, proto.ActionRollback, policy.Decide(i, cfg).Action)
	})
}

func TestBackoff(t *testing.T) {
	cfg := policy.DefaultConfig()
	for retries, want := range map[int]time.Duration{
		-1: 0, 0: 0, 1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 4: 40 * time.Second,
		5: 80 * time.Second, 6: 2 * time.Minute, 7: 2 * time.Minute, 1000: 2 * time.Minute,
	} {
		require.Equal(t, want, cfg.Backoff(retries), "retries %d", retries)
	}
}

func TestConfig(t *testing.T) {
	require.Equal(t, policy.DefaultConfig(), policy.Config{}.WithDefaults())
	require.NoError(t, policy.Config{}.Validate())
	custom := policy.Config{RollbackMinBattery: 55, MaxRetries: 5}.WithDefaults()
	require.Equal(t, 55.0, custom.RollbackMinBattery)
	require.Equal(t, 5, custom.MaxRetries)
	require.Equal(t, 30.0, custom.RetryMinBattery)

	for name, c := range map[string]policy.Config{
		"floor over 100":      {RollbackMinBattery: 140},
		"negative retry min":  {RetryMinBattery: -1},
		"signal above 0":      {MinSignal: 5},
		"signal below range":  {MinSignal: -200},
		"negative retries":    {MaxRetries: -1},
		"negative rollbacks":  {MaxRollbacks: -2},
		"max below base":      {BackoffBase: time.Minute, BackoffMax: time.Second},
		"negative stale time": {MaxTelemetryAge: -time.Second},
	} {
		require.ErrorIs(t, c.Validate(), policy.ErrConfig, name)
	}
}

func TestActionableAndRetryable(t *testing.T) {
	for _, s := range []proto.State{proto.StatePartial, proto.StateInstallFailed, proto.StateDownloadFailed, proto.StateVerifyFailed} {
		require.True(t, policy.Retryable(s), s)
		require.True(t, policy.Actionable(s), s)
	}
	for _, s := range []proto.State{proto.StateBootFailed, proto.StateBricked} {
		require.False(t, policy.Retryable(s), s)
		require.True(t, policy.Actionable(s), s)
	}
	for _, s := range []proto.State{proto.StateIdle, proto.StateUpdated, proto.StateRolledBack, proto.StateDownloading, proto.StateOffline} {
		require.False(t, policy.Actionable(s), s)
	}
}

var allStates = []proto.State{
	proto.StateIdle, proto.StateDownloading, proto.StateVerifying, proto.StateInstalling,
	proto.StateRebooting, proto.StateUpdated, proto.StateDownloadFailed, proto.StateVerifyFailed,
	proto.StateInstallFailed, proto.StatePartial, proto.StateBootFailed, proto.StateRollingBack,
	proto.StateRolledBack, proto.StateBricked, proto.StateOffline, "", "bogus",
}

// checkInvariants holds for every input: no rollback below the floor unless
// charging, no rollback or retry without fresh telemetry, every decision
// carries a defined action and a reason.
func checkInvariants(t *testing.T, i policy.Input, cfg policy.Config, d policy.Decision) {
	t.Helper()
	require.True(t, d.Action.Valid(), "action %q for %+v", d.Action, i)
	require.NotEmpty(t, d.Reason, "%+v", i)
	floor := cfg.WithDefaults().RollbackMinBattery
	if d.Action == proto.ActionRollback {
		require.True(t, i.Telemetry.Known, "rollback without telemetry: %+v", i)
		charged := i.Telemetry.Charging && i.Telemetry.BatteryPct >= cfg.WithDefaults().ChargingMinBattery
		require.True(t, charged || i.Telemetry.BatteryPct >= floor,
			"ROLLBACK BELOW THE FLOOR: battery %g, floor %g, input %+v", i.Telemetry.BatteryPct, floor, i)
	}
	if d.Action == proto.ActionRetry || d.Action == proto.ActionRollback {
		require.True(t, i.Telemetry.Known, "%s blind: %+v", d.Action, i)
		require.False(t, i.CommandOpen, "%s while a command is open: %+v", d.Action, i)
		require.False(t, i.Halted, "%s after a halt: %+v", d.Action, i)
	}
	if d.Action == proto.ActionRetry {
		charged := i.Telemetry.Charging && i.Telemetry.BatteryPct >= cfg.WithDefaults().ChargingMinBattery
		require.True(t, charged || i.Telemetry.BatteryPct >= cfg.WithDefaults().RetryMinBattery, "retry on low battery: %+v", i)
		require.Less(t, i.Retries, cfg.WithDefaults().MaxRetries, "retry past MaxRetries: %+v", i)
	}
}

// TestRollbackFloorGrid walks a grid of batteries, attempts, states, signals,
// flags and floors and asserts the guard on every point.
func TestRollbackFloorGrid(t *testing.T) {
	var points, rolled int
	for _, floor := range []float64{0, 25, 40, 60, 100} { // 0 takes the default, 40
		cfg := policy.Config{RollbackMinBattery: floor}
		for _, s := range allStates {
			for battery := 0.0; battery <= 100; battery += 5 {
				for _, charging := range []bool{false, true} {
					for _, known := range []bool{false, true} {
						for retries := 0; retries <= 5; retries++ {
							for rollbacks := 0; rollbacks <= 2; rollbacks++ {
								for _, rssi := range []int{-140, -101, -100} {
									for _, open := range []bool{false, true} {
										i := policy.Input{
											State:       s,
											Telemetry:   policy.Telemetry{Known: known, BatteryPct: battery, Charging: charging, RSSI: rssi, At: t0},
											Retries:     retries,
											Rollbacks:   rollbacks,
											LastCommand: t0.Add(-time.Duration(retries) * 3 * time.Second),
											CommandOpen: open,
											Now:         t0,
										}
										d := policy.Decide(i, cfg)
										checkInvariants(t, i, cfg, d)
										points++
										if d.Action == proto.ActionRollback {
											rolled++
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	require.Positive(t, rolled, "the grid never reaches a rollback; it tests nothing")
	t.Logf("%d inputs, %d rollbacks, none below the floor", points, rolled)
}

func TestRollbackFloorOddValues(t *testing.T) {
	cfg := policy.DefaultConfig()
	for _, b := range []float64{math.NaN(), math.Inf(-1), -5, 39.999999, math.Nextafter(40, 0)} {
		i := in(proto.StatePartial, tel(b, false, -70), 3)
		d := policy.Decide(i, cfg)
		require.NotEqual(t, proto.ActionRollback, d.Action, "battery %g", b)
	}
}

// FuzzDecide feeds arbitrary inputs to Decide and checks the invariants.
func FuzzDecide(f *testing.F) {
	f.Add(uint8(9), 80.0, false, true, -70, 3, 0, false, false, int64(0), int64(-1000), 40.0)
	f.Add(uint8(9), 39.9, false, true, -70, 3, 0, false, false, int64(0), int64(-1000), 40.0)
	f.Add(uint8(10), 10.0, true, true, -120, 0, 0, false, false, int64(0), int64(-1000), 0.0)
	f.Add(uint8(6), 50.0, false, false, -90, 1, 1, true, true, int64(-5000), int64(0), 75.0)
	f.Fuzz(func(t *testing.T, state uint8, battery float64, charging, known bool, rssi, retries, rollbacks int,
		open, halted bool, lastMs, atMs int64, floor float64) {
		cfg := policy.Config{RollbackMinBattery: floor}
		if cfg.Validate() != nil {
			return
		}
		i := policy.Input{
			State:       allStates[int(state)%len(allStates)],
			Telemetry:   policy.Telemetry{Known: known, BatteryPct: battery, Charging: charging, RSSI: rssi, At: t0.Add(time.Duration(atMs) * time.Millisecond)},
			Retries:     retries,
			Rollbacks:   rollbacks,
			LastCommand: t0.Add(time.Duration(lastMs) * time.Millisecond),
			CommandOpen: open,
			Halted:      halted,
			Now:         t0,
		}
		checkInvariants(t, i, cfg, policy.Decide(i, cfg))
	})
}

func TestJitter(t *testing.T) {
	cfg := policy.DefaultConfig()
	seen := map[time.Duration]bool{}
	for i := range 50 {
		id := "dev-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		for retries := 1; retries <= 3; retries++ {
			d := cfg.BackoffFor(id, retries)
			base := cfg.Backoff(retries)
			require.GreaterOrEqual(t, d, base, "jitter only lengthens")
			require.LessOrEqual(t, d, base+time.Duration(cfg.Jitter*float64(base)), "at most Jitter of the backoff")
			require.Equal(t, d, cfg.BackoffFor(id, retries), "pure: same device and attempt, same wait")
			seen[d] = true
		}
	}
	require.Greater(t, len(seen), 100, "devices spread out")
	cfg.Jitter = -1
	require.Equal(t, cfg.Backoff(2), cfg.BackoffFor("x", 2))
}

func TestBaselines(t *testing.T) {
	cfg := policy.DefaultConfig()
	low := tel(5, false, -130)
	for _, tc := range []struct {
		name   string
		fn     policy.Func
		in     policy.Input
		action proto.Action
	}{
		{"retry-only retries blind to the battery", policy.RetryOnly, in(proto.StatePartial, low, 0), proto.ActionRetry},
		{"retry-only ignores backoff", policy.RetryOnly, func() policy.Input { i := in(proto.StatePartial, good(), 1); i.LastCommand = t0; return i }(), proto.ActionRetry},
		{"retry-only stops at the count", policy.RetryOnly, in(proto.StatePartial, good(), 3), proto.ActionNone},
		{"retry-only waits for the result", policy.RetryOnly, func() policy.Input { i := in(proto.StatePartial, good(), 1); i.CommandOpen = true; return i }(), proto.ActionNone},
		{"retry-only leaves healthy alone", policy.RetryOnly, in(proto.StateUpdated, good(), 0), proto.ActionNone},
		{"unguarded rolls back below the floor", policy.RetryThenRollback, in(proto.StatePartial, low, 3), proto.ActionRollback},
		{"unguarded rolls back boot_failed", policy.RetryThenRollback, in(proto.StateBootFailed, low, 0), proto.ActionRollback},
		{"unguarded stops after its rollback", policy.RetryThenRollback, func() policy.Input { i := in(proto.StatePartial, low, 3); i.Rollbacks = 1; return i }(), proto.ActionNone},
		{"observe never acts", policy.Observe, in(proto.StatePartial, good(), 0), proto.ActionNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.fn(tc.in, cfg)
			require.Equal(t, tc.action, got.Action, "reason %q", got.Reason)
			require.NotEmpty(t, got.Reason)
		})
	}
}

// TestSignalMarginAndDownloadBackoff covers the download retries' own
// rules: a configured signal margin, and failed downloads waiting the
// first backoff rather than a doubled one.
func TestSignalMarginAndDownloadBackoff(t *testing.T) {
	margin := policy.DefaultConfig()
	margin.SignalMargin = 5
	afterDownloads := func(retries, failedDownloads int, since time.Duration) policy.Input {
		i := in(proto.StateDownloadFailed, tel(80, false, -80), retries)
		i.DownloadFailures = failedDownloads
		i.LastCommand = t0.Add(-since)
		return i
	}
	base := policy.DefaultConfig().BackoffBase // jitter adds at most 20 %
	for _, tc := range []struct {
		name   string
		cfg    policy.Config
		in     policy.Input
		action proto.Action
		reason string
	}{
		{"inside the margin waits", margin, in(proto.StateDownloadFailed, tel(80, false, -96), 0), proto.ActionDefer, policy.ReasonWeakSignal},
		{"at the margin retries", margin, in(proto.StateDownloadFailed, tel(80, false, -95), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"the margin leaves installs alone", margin, in(proto.StatePartial, tel(80, false, -99), 0), proto.ActionRetry, policy.ReasonRetryable},
		{"two failed downloads wait one base backoff", policy.DefaultConfig(), afterDownloads(2, 2, base*13/10), proto.ActionRetry, policy.ReasonRetryable},
		{"two failed downloads still wait the base", policy.DefaultConfig(), afterDownloads(2, 2, base/2), proto.ActionNone, policy.ReasonBackoff},
		{"a flash retry after them doubles", policy.DefaultConfig(), afterDownloads(4, 2, base*13/10), proto.ActionNone, policy.ReasonBackoff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := policy.Decide(tc.in, tc.cfg)
			require.Equal(t, tc.action, got.Action, "reason %q", got.Reason)
			require.Equal(t, tc.reason, got.Reason)
		})
	}
}
