// Package policy is the recoverer's decision rule: a pure function from what
// is known about one failed device to the action to take and a stable reason
// code. It does no I/O and reads no clock, so every rule is tested as a table
// and the safety guard (never a rollback below the battery floor) is checked
// over whole grids of inputs.
package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// Reason codes. They are stored in the warehouse and counted by analysts, so
// they are part of the contract: add new ones, never rename old ones.
const (
	// ReasonHealthy means the device is idle, updated or rolled back; nothing to do.
	ReasonHealthy = "healthy"
	// ReasonInProgress means the device is mid-update or mid-rollback; let it finish.
	ReasonInProgress = "in_progress"
	// ReasonOffline means the broker reported the device gone; a command would not arrive.
	ReasonOffline = "offline"
	// ReasonUnknownState means the state is not one this policy knows; never act on a guess.
	ReasonUnknownState = "unknown_state"
	// ReasonBricked means the device no longer boots; only a person can help.
	ReasonBricked = "bricked"
	// ReasonHalted means a halt was already sent for this failure; stay hands off.
	ReasonHalted = "halted"
	// ReasonCommandOpen means a command is out and its result has not come back yet.
	ReasonCommandOpen = "command_open"
	// ReasonNoTelemetry means no reading is known, so battery and signal are unknown.
	ReasonNoTelemetry = "no_telemetry"
	// ReasonStaleTelemetry means the last reading is older than Config.MaxTelemetryAge.
	ReasonStaleTelemetry = "stale_telemetry"
	// ReasonRetryable means a retryable failure with enough battery and signal: retry.
	ReasonRetryable = "retryable_failure"
	// ReasonBackoff means the previous retry was too recent; wait until Decision.Until.
	ReasonBackoff = "backoff"
	// ReasonBatteryLow means too little battery (and not charging) for a retry.
	ReasonBatteryLow = "battery_low"
	// ReasonWeakSignal means the signal is too weak to download the image again.
	ReasonWeakSignal = "weak_signal"
	// ReasonRetriesExhausted means Config.MaxRetries retries failed; roll back.
	ReasonRetriesExhausted = "retries_exhausted"
	// ReasonBootFailed means the new image does not boot; retrying it is pointless, roll back.
	ReasonBootFailed = "boot_failed"
	// ReasonBelowRollbackFloor means a rollback is due but the battery is under the floor.
	ReasonBelowRollbackFloor = "battery_below_rollback_floor"
	// ReasonVerifyFailed means the image failed its integrity check. The device still
	// runs its old firmware, so there is nothing to roll back, and retrying the
	// same artifact is a question for a person, not a loop.
	ReasonVerifyFailed = "verify_failed"
	// ReasonRollbackFailed means Config.MaxRollbacks rollbacks did not recover the device.
	ReasonRollbackFailed = "rollback_failed"
)

// Config holds the policy's thresholds. Zero fields take the value
// DefaultConfig gives them, so callers set only what they change.
type Config struct {
	// RetryMinBattery is the battery level, in percent, a device needs for a
	// retry unless it is charging. Default 30.
	RetryMinBattery float64
	// RollbackMinBattery is the rollback floor, in percent: no rollback is
	// ever decided below it unless the device is charging, because a rollback
	// that dies halfway bricks the device. Default 40.
	RollbackMinBattery float64
	// MinSignal is the weakest signal, in dBm, at which a retry (which
	// downloads the image again) is worth sending. Default -100.
	MinSignal int
	// MaxRetries is how many retries one failure gets before a rollback. Default 3.
	MaxRetries int
	// MaxRollbacks is how many rollbacks one failure gets before a halt. Default 1.
	MaxRollbacks int
	// BackoffBase is the wait after the first retry; it doubles with each
	// further retry so a struggling device is not hammered. Default 5s.
	BackoffBase time.Duration
	// BackoffMax caps the backoff. Default 2m.
	BackoffMax time.Duration
	// MaxTelemetryAge is how old the latest reading may be before it counts
	// as unknown: a battery level from an hour ago is no guard. Default 5m.
	MaxTelemetryAge time.Duration
}

// DefaultConfig returns the defaults of DESIGN.md's recovery policy.
func DefaultConfig() Config {
	return Config{
		RetryMinBattery:    30,
		RollbackMinBattery: 40,
		MinSignal:          -100,
		MaxRetries:         3,
		MaxRollbacks:       1,
		BackoffBase:        5 * time.Second,
		BackoffMax:         2 * time.Minute,
		MaxTelemetryAge:    5 * time.Minute,
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.RetryMinBattery == 0 {
		c.RetryMinBattery = d.RetryMinBattery
	}
	if c.RollbackMinBattery == 0 {
		c.RollbackMinBattery = d.RollbackMinBattery
	}
	if c.MinSignal == 0 {
		c.MinSignal = d.MinSignal
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = d.MaxRetries
	}
	if c.MaxRollbacks == 0 {
		c.MaxRollbacks = d.MaxRollbacks
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = d.BackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = d.BackoffMax
	}
	if c.MaxTelemetryAge == 0 {
		c.MaxTelemetryAge = d.MaxTelemetryAge
	}
	return c
}

// ErrConfig is wrapped by every error Validate returns.
var ErrConfig = errors.New("policy: invalid config")

// Validate reports a threshold that cannot be meant, after defaults are
// applied. The recoverer calls it at construction so a typo in a flag fails
// the start rather than the fleet.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.RetryMinBattery < 0 || c.RetryMinBattery > 100:
		return fmt.Errorf("%w: RetryMinBattery %g not in 0..100", ErrConfig, c.RetryMinBattery)
	case c.RollbackMinBattery < 0 || c.RollbackMinBattery > 100:
		return fmt.Errorf("%w: RollbackMinBattery %g not in 0..100", ErrConfig, c.RollbackMinBattery)
	case c.MinSignal < proto.MinRSSI || c.MinSignal > proto.MaxRSSI:
		return fmt.Errorf("%w: MinSignal %d not in %d..%d dBm", ErrConfig, c.MinSignal, proto.MinRSSI, proto.MaxRSSI)
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: MaxRetries %d is negative", ErrConfig, c.MaxRetries)
	case c.MaxRollbacks < 0:
		return fmt.Errorf("%w: MaxRollbacks %d is negative", ErrConfig, c.MaxRollbacks)
	case c.BackoffBase < 0 || c.BackoffMax < 0 || c.MaxTelemetryAge < 0:
		return fmt.Errorf("%w: durations must not be negative", ErrConfig)
	case c.BackoffMax < c.BackoffBase:
		return fmt.Errorf("%w: BackoffMax %v below BackoffBase %v", ErrConfig, c.BackoffMax, c.BackoffBase)
	}
	return nil
}

// Backoff returns how long to wait after the retries-th retry before the
// next one: BackoffBase doubled for each retry after the first, capped at
// BackoffMax. It is zero before any retry.
func (c Config) Backoff(retries int) time.Duration {
	c = c.WithDefaults()
	if retries <= 0 {
		return 0
	}
	d := c.BackoffBase
	for i := 1; i < retries; i++ {
		if d >= c.BackoffMax/2 {
			return c.BackoffMax
		}
		d *= 2
	}
	return min(d, c.BackoffMax)
}

// Telemetry is the latest reading known for a device.
type Telemetry struct {
	// Known is false until a reading has arrived; the other fields mean
	// nothing until then.
	Known bool
	// BatteryPct is the battery level, 0 to 100.
	BatteryPct float64
	// Charging is true while the device is on external power.
	Charging bool
	// RSSI is the signal strength in dBm.
	RSSI int
	// At is when the reading was received, on the recoverer's clock (device
	// clocks drift). Zero means "age unknown" and is not checked.
	At time.Time
}

// Input is everything the policy looks at for one device.
type Input struct {
	// State is the device's OTA state from its latest status.
	State proto.State
	// Firmware is the version the device runs now.
	Firmware string
	// TargetFirmware is the version the rollout wants on the device.
	TargetFirmware string
	// Telemetry is the latest reading.
	Telemetry Telemetry
	// Retries is how many retries were sent for the current failure.
	Retries int
	// Rollbacks is how many rollbacks were sent for the current failure.
	Rollbacks int
	// LastCommand is when the last retry or rollback was sent; zero if none.
	LastCommand time.Time
	// CommandOpen is true while a retry or rollback awaits its result.
	CommandOpen bool
	// Halted is true once a halt was sent for the current failure.
	Halted bool
	// Now is the time of the decision.
	Now time.Time
}

// Decision is what to do about a device and why.
type Decision struct {
	// Action is the command to send; proto.ActionNone sends nothing.
	Action proto.Action
	// Reason is one of the Reason* codes.
	Reason string
	// Until is, for a backoff, when the backoff ends and the decision should
	// be taken again; zero otherwise.
	Until time.Time
}

// Actionable reports whether a status in state s calls for a decision: a
// failure the recoverer may act on, or a bricked device to flag.
func Actionable(s proto.State) bool {
	return s.Failed() || s == proto.StateBricked
}

// Retryable reports whether a failure in state s may be retried: the image
// may still apply if downloaded or installed again.
func Retryable(s proto.State) bool {
	switch s {
	case proto.StatePartial, proto.StateInstallFailed, proto.StateDownloadFailed:
		return true
	}
	return false
}

// Decide applies the recovery rules of DESIGN.md to in. The rules, in order:
//
//   - bricked: halt;
//   - not a failure: none (healthy, in_progress, offline, unknown_state);
//   - halt already sent, or a command awaiting its result: none;
//   - no fresh telemetry: defer, never act blind;
//   - rollbacks used up: halt;
//   - verify_failed: halt (nothing to roll back, the artifact needs a person);
//   - boot_failed, or retries used up: rollback if the battery is at or above
//     the floor or the device charges, else defer;
//   - otherwise retry, after the backoff, when the battery (or charging) and
//     the signal allow; else defer with the reason.
//
// Whatever the input, Decide returns a rollback only when the telemetry is
// known and fresh and the battery is at or above RollbackMinBattery or the
// device is charging.
func Decide(in Input, cfg Config) Decision {
	cfg = cfg.WithDefaults()
	switch {
	case in.State == proto.StateBricked:
		// A bricked device cannot answer the open command, if any: flag it now.
		return Decision{Action: proto.ActionHalt, Reason: ReasonBricked}
	case !in.State.Valid():
		return none(ReasonUnknownState)
	case in.State == proto.StateOffline:
		return none(ReasonOffline)
	case !in.State.Failed():
		switch in.State {
		case proto.StateIdle, proto.StateUpdated, proto.StateRolledBack:
			return none(ReasonHealthy)
		}
		return none(ReasonInProgress)
	case in.Halted:
		return none(ReasonHalted)
	case in.CommandOpen:
		return none(ReasonCommandOpen)
	case !in.Telemetry.Known:
		return deferFor(ReasonNoTelemetry)
	case !in.Telemetry.At.IsZero() && in.Now.Sub(in.Telemetry.At) > cfg.MaxTelemetryAge:
		return deferFor(ReasonStaleTelemetry)
	case in.Rollbacks >= cfg.MaxRollbacks:
		return Decision{Action: proto.ActionHalt, Reason: ReasonRollbackFailed}
	case in.State == proto.StateVerifyFailed:
		return Decision{Action: proto.ActionHalt, Reason: ReasonVerifyFailed}
	case in.State == proto.StateBootFailed:
		return rollback(in.Telemetry, cfg, ReasonBootFailed)
	case !Retryable(in.State):
		// A Failed state this policy does not know how to treat.
		return none(ReasonUnknownState)
	case in.Retries >= cfg.MaxRetries:
		return rollback(in.Telemetry, cfg, ReasonRetriesExhausted)
	}
	if in.Retries > 0 && !in.LastCommand.IsZero() {
		if until := in.LastCommand.Add(cfg.Backoff(in.Retries)); in.Now.Before(until) {
			return Decision{Action: proto.ActionNone, Reason: ReasonBackoff, Until: until}
		}
	}
	t := in.Telemetry
	if !t.Charging && t.BatteryPct < cfg.RetryMinBattery {
		return deferFor(ReasonBatteryLow)
	}
	if t.RSSI < cfg.MinSignal {
		return deferFor(ReasonWeakSignal)
	}
	return Decision{Action: proto.ActionRetry, Reason: ReasonRetryable}
}

// rollback holds the floor guard: the only place a rollback is returned.
func rollback(t Telemetry, cfg Config, reason string) Decision {
	if !t.Known || (!t.Charging && !(t.BatteryPct >= cfg.RollbackMinBattery)) {
		return deferFor(ReasonBelowRollbackFloor)
	}
	return Decision{Action: proto.ActionRollback, Reason: reason}
}

func none(reason string) Decision { return Decision{Action: proto.ActionNone, Reason: reason} }

func deferFor(reason string) Decision { return Decision{Action: proto.ActionDefer, Reason: reason} }
