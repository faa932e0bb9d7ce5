// Package policy is the recoverer's decision rule: a pure function from what
// is known about one failed device to the action to take and a stable reason
// code. It does no I/O and reads no clock, so every rule is tested as a table
// and the safety guard (never a rollback below the battery floor) is checked
// over whole grids of inputs.
package policy

import (
	"errors"
	"fmt"
	"hash/fnv"
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
	// ReasonSilentAfterCommand means the device has not been heard from for
	// Config.SilenceTimeout since a command was sent: a person must look.
	ReasonSilentAfterCommand = "silent_after_command"
	// ReasonStuckAfterCommand means a command is out and the device has sat
	// in one state longer than that state's timeout (Config.StateTimeouts).
	ReasonStuckAfterCommand = "stuck_after_command"
	// ReasonSilentFallback means the device reports updated but runs a
	// version other than the target: it fell back to its old slot after the
	// reboot. The update did not succeed; treat it as a retryable failure.
	ReasonSilentFallback = "silent_fallback"
	// ReasonCohortTripped means the device's (firmware, region) cohort
	// tripped the cohort breaker: no more retries, roll back (guarded).
	ReasonCohortTripped = "cohort_tripped"
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
	// MinSignal is the weakest signal, in dBm, at which a retry that
	// downloads the image again (from download_failed or verify_failed) is
	// worth sending. Default -100.
	MinSignal int
	// ChargingMinBattery is the battery level, in percent, under which
	// charging no longer stands in for a charged battery: a charger can be
	// unplugged, or cycle off, in the middle of a flash. Default 20.
	ChargingMinBattery float64
	// SignalMargin is added to MinSignal for a retry that downloads again.
	// Default 0. It used to be 5, when a download that failed at the edge
	// spent one of MaxRetries; now it spends the download budget
	// (MaxDownloadRetries) and a margin only delays devices whose signal
	// hovers near MinSignal (a weak link's readings rarely reach 5 dB over
	// it). Raise it where signals drift slowly, so a reading at the edge
	// predicts a failed download.
	SignalMargin int
	// MaxRetries is how many retries one failure gets before a rollback. Default 3.
	MaxRetries int
	// MaxDownloadRetries is how many retries that failed in their download
	// one failure may spend, apart from MaxRetries. A failed download
	// flashed nothing, so spending the flash budget on it would roll back,
	// after a weak link's bad minute, a device whose next flash succeeds.
	// Once they are spent the device is rolled back (guarded as ever): it
	// still runs its old firmware, and the rollout can come back for it
	// when its link is better. Default 3 (zero takes it).
	MaxDownloadRetries int
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
	// Jitter spreads each backoff by up to this fraction of it, drawn per
	// device and attempt from the device ID, so devices that failed together
	// are not retried together. Default 0.2; negative means none.
	Jitter float64
	// SilenceTimeout is how long a device may stay silent (no status, no
	// reading) while a command of ours is out before it is halted and
	// escalated to a person. Default 2m.
	SilenceTimeout time.Duration
	// StateTimeouts bound how long a device may sit in one state while a
	// command is out, per state, before it is halted as stuck. States not
	// listed take DefaultStateTimeouts' value, and states not there either
	// have no bound.
	StateTimeouts map[proto.State]time.Duration
}

// DefaultStateTimeouts returns the per-state timeouts used for states
// Config.StateTimeouts does not list: downloading is slow on a weak link,
// a reboot is quick, a failure state with a command out means the device
// never acted on it.
func DefaultStateTimeouts() map[proto.State]time.Duration {
	return map[proto.State]time.Duration{
		proto.StateDownloading:    10 * time.Minute,
		proto.StateVerifying:      2 * time.Minute,
		proto.StateInstalling:     5 * time.Minute,
		proto.StateRebooting:      3 * time.Minute,
		proto.StateRollingBack:    5 * time.Minute,
		proto.StatePartial:        5 * time.Minute,
		proto.StateInstallFailed:  5 * time.Minute,
		proto.StateDownloadFailed: 5 * time.Minute,
		proto.StateVerifyFailed:   5 * time.Minute,
		proto.StateBootFailed:     5 * time.Minute,
		proto.StateUpdated:        5 * time.Minute,
	}
}

// StateTimeout returns how long a device may sit in state s while a
// command is out; zero means no bound.
func (c Config) StateTimeout(s proto.State) time.Duration {
	if d, ok := c.StateTimeouts[s]; ok {
		return d
	}
	return DefaultStateTimeouts()[s]
}

// DefaultConfig returns the defaults of DESIGN.md's recovery policy.
func DefaultConfig() Config {
	return Config{
		RetryMinBattery:    30,
		RollbackMinBattery: 40,
		MinSignal:          -100,
		MaxRetries:         3,
		MaxDownloadRetries: 3,
		MaxRollbacks:       1,
		BackoffBase:        5 * time.Second,
		BackoffMax:         2 * time.Minute,
		MaxTelemetryAge:    5 * time.Minute,
		Jitter:             0.2,
		SignalMargin:       0,
		ChargingMinBattery: 20,
		SilenceTimeout:     2 * time.Minute,
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
	if c.MaxDownloadRetries == 0 {
		c.MaxDownloadRetries = d.MaxDownloadRetries
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
	if c.Jitter == 0 {
		c.Jitter = d.Jitter
	}
	if c.ChargingMinBattery == 0 {
		c.ChargingMinBattery = d.ChargingMinBattery
	}
	if c.SilenceTimeout == 0 {
		c.SilenceTimeout = d.SilenceTimeout
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
	case c.MaxDownloadRetries < 0:
		return fmt.Errorf("%w: MaxDownloadRetries %d is negative", ErrConfig, c.MaxDownloadRetries)
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: MaxRetries %d is negative", ErrConfig, c.MaxRetries)
	case c.MaxRollbacks < 0:
		return fmt.Errorf("%w: MaxRollbacks %d is negative", ErrConfig, c.MaxRollbacks)
	case c.Jitter > 1:
		return fmt.Errorf("%w: Jitter %g above 1", ErrConfig, c.Jitter)
	case c.BackoffBase < 0 || c.BackoffMax < 0 || c.MaxTelemetryAge < 0 || c.SilenceTimeout < 0:
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

// BackoffFor is Backoff(retries) stretched by the device's jitter: up to
// Config.Jitter of it more, drawn from the device ID and the retry count,
// so the same device and attempt always wait the same time (the policy
// stays a pure function) while devices that failed together spread out.
func (c Config) BackoffFor(deviceID string, retries int) time.Duration {
	c = c.WithDefaults()
	d := c.Backoff(retries)
	if d == 0 || c.Jitter <= 0 {
		return d
	}
	h := fnv.New64a()
	h.Write([]byte(deviceID))
	h.Write([]byte{byte(retries), byte(retries >> 8)})
	u := float64(h.Sum64()>>11) / float64(1<<53)
	return d + time.Duration(u*c.Jitter*float64(d))
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
	// DeviceID names the device; it seeds the backoff jitter.
	DeviceID string
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
	// DownloadFailures is how many of those Retries failed in their
	// download, flashing nothing (see Config.MaxDownloadRetries).
	DownloadFailures int
	// Rollbacks is how many rollbacks were sent for the current failure.
	Rollbacks int
	// LastCommand is when the last retry or rollback was sent; zero if none.
	LastCommand time.Time
	// CommandOpen is true while a retry or rollback awaits its result.
	CommandOpen bool
	// Halted is true once a halt was sent for the current failure.
	Halted bool
	// LastHeard is when the device was last heard from (any status or
	// reading); zero if never. With a command out, silence past
	// Config.SilenceTimeout escalates.
	LastHeard time.Time
	// StateSince is when the device entered State; zero if unknown. With a
	// command out, a state held past its Config.StateTimeout escalates.
	StateSince time.Time
	// CohortTripped is true when the device's (target firmware, region)
	// cohort tripped the cohort breaker.
	CohortTripped bool
	// Now is the time of the decision.
	Now time.Time
}

// FellBack reports whether in describes a silent fallback: the device says
// updated but runs a version other than its target, so the new image did
// not survive the reboot.
func (in Input) FellBack() bool {
	return in.State == proto.StateUpdated && in.TargetFirmware != "" && in.Firmware != "" && in.Firmware != in.TargetFirmware
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
// failure the recoverer may act on, or a bricked device to flag. A silent
// fallback (see Input.FellBack) is actionable too, though its state is not.
func Actionable(s proto.State) bool {
	return s.Failed() || s == proto.StateBricked
}

// Retryable reports whether a failure in state s may be retried: the image
// may still apply if downloaded or installed again. verify_failed is
// retryable: the device still runs its old firmware and a fresh download of
// the same artifact usually verifies.
func Retryable(s proto.State) bool {
	switch s {
	case proto.StatePartial, proto.StateInstallFailed, proto.StateDownloadFailed, proto.StateVerifyFailed:
		return true
	}
	return false
}

// Func is the shape of a decision rule: Decide, or a baseline to compare
// it with.
type Func func(Input, Config) Decision

// Decide applies the recovery rules of DESIGN.md to in. The rules, in order:
//
//   - bricked: halt;
//   - unknown state: none, never act on a guess;
//   - a command out and the device silent past SilenceTimeout, or held in
//     one state past its StateTimeout: halt (escalate to a person);
//   - offline, in progress, or healthy: none; updated counts as healthy
//     only on the target version (a silent fallback is a failure);
//   - halt already sent, or a command awaiting its result: none;
//   - no fresh telemetry: defer, never act blind;
//   - rollbacks used up: halt;
//   - a tripped cohort, or retries used up (MaxRetries of them, not
//     counting failed downloads up to MaxDownloadRetries): rollback if
//     the battery is at or above the floor or the device charges, else
//     defer;
//   - the download budget spent: rollback when the floor allows it, else
//     go on retrying (the retry guard is lower) on the flash retries;
//   - boot_failed: rollback when the floor allows it; under the floor,
//     a retry (the guards below apply) while retries remain, since the
//     retry guard is lower; then rollback or defer as above;
//   - otherwise retry, after the jittered exponential backoff, when the
//     battery (or charging) allows and, for a retry that downloads again
//     (download_failed, verify_failed), the signal too; else defer with
//     the reason.
//
// Whatever the input, Decide returns a rollback only when the telemetry is
// known and fresh and the battery is at or above RollbackMinBattery or the
// device is charging.
func Decide(in Input, cfg Config) Decision {
	cfg = cfg.WithDefaults()
	fellBack := in.FellBack()
	switch {
	case in.State == proto.StateBricked:
		// A bricked device cannot answer the open command, if any: flag it now.
		return Decision{Action: proto.ActionHalt, Reason: ReasonBricked}
	case !in.State.Valid():
		return none(ReasonUnknownState)
	case in.CommandOpen && !in.Halted && !in.LastHeard.IsZero() && in.Now.Sub(in.LastHeard) > cfg.SilenceTimeout:
		return Decision{Action: proto.ActionHalt, Reason: ReasonSilentAfterCommand}
	case in.CommandOpen && !in.Halted && stuck(in, cfg):
		return Decision{Action: proto.ActionHalt, Reason: ReasonStuckAfterCommand}
	case in.State == proto.StateOffline:
		return none(ReasonOffline)
	case !in.State.Failed() && !fellBack:
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
	case in.CohortTripped:
		return rollback(in.Telemetry, cfg, ReasonCohortTripped)
	case in.State == proto.StateBootFailed && (in.Retries >= cfg.MaxRetries || rollsBack(in.Telemetry, cfg)):
		return rollback(in.Telemetry, cfg, ReasonBootFailed)
	case in.State != proto.StateBootFailed && !fellBack && !Retryable(in.State):
		// A Failed state this policy does not know how to treat.
		return none(ReasonUnknownState)
	case in.Retries-min(in.DownloadFailures, cfg.MaxDownloadRetries) >= cfg.MaxRetries,
		in.DownloadFailures >= cfg.MaxDownloadRetries && rollsBack(in.Telemetry, cfg):
		return rollback(in.Telemetry, cfg, ReasonRetriesExhausted)
	}
	// From here on the device gets a retry, when the guards allow. That
	// includes a boot_failed device under the rollback floor, and one whose
	// download budget is spent under the floor: the image flashed (or
	// downloaded) again needs only the retry guard, and may work this time;
	// further failed downloads then spend the flash retries.
	if in.Retries > 0 && !in.LastCommand.IsZero() {
		// Failed downloads within their budget wait the first backoff each:
		// the signal, not the device, failed them, and doubling the wait
		// would spend the next good readings doing nothing.
		n := max(1, in.Retries-min(in.DownloadFailures, cfg.MaxDownloadRetries))
		if until := in.LastCommand.Add(cfg.BackoffFor(in.DeviceID, n)); in.Now.Before(until) {
			return Decision{Action: proto.ActionNone, Reason: ReasonBackoff, Until: until}
		}
	}
	t := in.Telemetry
	if !charged(t, cfg) && t.BatteryPct < cfg.RetryMinBattery {
		return deferFor(ReasonBatteryLow)
	}
	if downloads(in.State) && t.RSSI < cfg.MinSignal+max(cfg.SignalMargin, 0) {
		// Only a retry that downloads the image again needs the link; a
		// partial or failed install re-applies the image already there.
		return deferFor(ReasonWeakSignal)
	}
	if fellBack {
		return Decision{Action: proto.ActionRetry, Reason: ReasonSilentFallback}
	}
	if in.State == proto.StateBootFailed {
		return Decision{Action: proto.ActionRetry, Reason: ReasonBootFailed}
	}
	return Decision{Action: proto.ActionRetry, Reason: ReasonRetryable}
}

// downloads reports whether a retry from state s downloads the image again.
func downloads(s proto.State) bool {
	return s == proto.StateDownloadFailed || s == proto.StateVerifyFailed
}

// stuck reports whether the device has held its state past its timeout.
func stuck(in Input, cfg Config) bool {
	if in.StateSince.IsZero() {
		return false
	}
	d := cfg.StateTimeout(in.State)
	return d > 0 && in.Now.Sub(in.StateSince) > d
}

// charged reports whether the device charges with enough battery for the
// charger to stand in for the battery guards.
func charged(t Telemetry, cfg Config) bool {
	return t.Charging && t.BatteryPct >= cfg.ChargingMinBattery
}

// rollsBack reports whether the rollback floor guard allows a rollback.
func rollsBack(t Telemetry, cfg Config) bool {
	return t.Known && (charged(t, cfg) || t.BatteryPct >= cfg.RollbackMinBattery)
}

// rollback holds the floor guard: the only place a rollback is returned.
func rollback(t Telemetry, cfg Config, reason string) Decision {
	if !rollsBack(t, cfg) {
		return deferFor(ReasonBelowRollbackFloor)
	}
	return Decision{Action: proto.ActionRollback, Reason: reason}
}

func none(reason string) Decision { return Decision{Action: proto.ActionNone, Reason: reason} }

func deferFor(reason string) Decision { return Decision{Action: proto.ActionDefer, Reason: reason} }
