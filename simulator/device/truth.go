package device

import (
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// TruthMaxRetries is how many retries the ground truth considers when it
// asks whether retrying fixes a device: the recoverer's default budget.
const TruthMaxRetries = 3

// Remedy is what would have fixed a device whose update failed: the answer
// key the recoverer's decisions are scored against.
type Remedy string

// The remedies.
const (
	// RemedyNone means the update did not fail (or has not run).
	RemedyNone Remedy = "none"
	// RemedyRetry means a retry fixes the device, within TruthMaxRetries.
	RemedyRetry Remedy = "retry"
	// RemedyRetryAfterSignal means the download failed on a weak signal: a
	// retry fixes it only once the signal recovers.
	RemedyRetryAfterSignal Remedy = "retry_after_signal"
	// RemedyRollback means retries keep failing (a bad build, bad luck):
	// only a rollback restores a working device.
	RemedyRollback Remedy = "rollback"
	// RemedyChargeFirst means that when the update failed both a retry
	// and a rollback risked bricking the device above TruthRiskBudget (a
	// single-bank device on a low, cold or worn battery without a
	// charger): it is safely recoverable only after charging.
	RemedyChargeFirst Remedy = "charge_first"
	// RemedyUnrecoverable means no command fixes the device (its boot
	// loader is corrupted); a person must. Halting it is right.
	RemedyUnrecoverable Remedy = "unrecoverable"
)

// Verdict is how a device ended the run, for scoring the controller.
type Verdict string

// The verdicts.
const (
	// VerdictNotStarted means the device's update never started.
	VerdictNotStarted Verdict = "not_started"
	// VerdictHealthy means the update never failed.
	VerdictHealthy Verdict = "healthy"
	// VerdictRecovered means the update failed and commands brought the
	// device back to a working firmware (updated or rolled back).
	VerdictRecovered Verdict = "recovered"
	// VerdictBrickedByCommand means a command started in unsafe conditions
	// bricked the device.
	VerdictBrickedByCommand Verdict = "bricked_by_command"
	// VerdictLeftBroken means the device ended the run in a failed state.
	VerdictLeftBroken Verdict = "left_broken"
	// VerdictInProgress means an update or command was still running.
	VerdictInProgress Verdict = "in_progress"
)

// TruthVersion is the version of the Truth record, its "v" field.
const TruthVersion = 1

// Truth is the ground truth about one device: what happened to it, what
// would have fixed it, and how it ended. It is one line of the ground-truth
// file, as JSON with the tags below.
type Truth struct {
	// V is TruthVersion.
	V int `json:"v"`
	// DeviceID is the device's ID.
	DeviceID string `json:"device_id"`
	// Region is the device's region.
	Region string `json:"region"`
	// Model is the hardware model.
	Model string `json:"model"`
	// FromFirmware is the version before the rollout.
	FromFirmware string `json:"from_firmware"`
	// ToFirmware is the version the rollout installs.
	ToFirmware string `json:"to_firmware"`
	// Wave is the rollout wave, from 0.
	Wave int `json:"wave"`
	// BadBuild is true when the device installs the bad build.
	BadBuild bool `json:"bad_build"`
	// Power is battery, mains or cycled.
	Power string `json:"power"`
	// WeakSignal is true when the device's mean signal is under WeakSignalDBm.
	WeakSignal bool `json:"weak_signal"`
	// Fate is the state the device's first update ends in (decided when
	// the fleet is generated, whether or not the update ran).
	Fate proto.State `json:"fate"`
	// Cause explains a failing fate; empty for updated.
	Cause string `json:"cause,omitempty"`
	// Started is true once the update has started.
	Started bool `json:"started"`
	// Remedy is what would have fixed the device, judged when its update
	// failed; none until then.
	Remedy Remedy `json:"remedy"`
	// RetriesToFix is the retry that first succeeds, 1 to TruthMaxRetries,
	// when Remedy is retry or retry_after_signal; 0 otherwise.
	RetriesToFix int `json:"retries_to_fix"`
	// BatteryAtFailure is the battery level when the update failed.
	BatteryAtFailure float64 `json:"battery_at_failure"`
	// ChargingAtFailure is true when the device was charging then.
	ChargingAtFailure bool `json:"charging_at_failure"`
	// FinalState is the OTA state at the time of the record.
	FinalState proto.State `json:"final_state"`
	// FinalFirmware is the firmware at the time of the record.
	FinalFirmware string `json:"final_firmware"`
	// BatteryPct, VoltageV, ChargeCycles and BootCount are the device's
	// condition at the time of the record.
	BatteryPct float64 `json:"battery_pct"`
	// VoltageV is the battery voltage under the current load.
	VoltageV float64 `json:"voltage_v"`
	// ChargeCycles is the battery's full charge cycles so far.
	ChargeCycles int `json:"charge_cycles"`
	// BootCount is the number of boots so far.
	BootCount int `json:"boot_count"`
	// Commands counts the commands the device received (duplicates included).
	Commands int `json:"commands"`
	// Retries counts retry commands applied.
	Retries int `json:"retries"`
	// Rollbacks counts rollback commands applied.
	Rollbacks int `json:"rollbacks"`
	// Defers counts defer commands applied.
	Defers int `json:"defers"`
	// Halts counts halt commands applied.
	Halts int `json:"halts"`
	// Duplicates counts commands answered as duplicates.
	Duplicates int `json:"duplicates"`
	// UnsafeCommands counts retries and rollbacks started while their
	// brick risk was above TruthRiskBudget.
	UnsafeCommands int `json:"unsafe_commands"`
	// Storage is the device's flash layout, "ab" or "single".
	Storage proto.Storage `json:"storage"`
	// WindowUnderBudget is true when, between the update's failure and the
	// record, there was a moment at which a retry or a rollback would have
	// bricked the device with probability at most TruthRiskBudget and
	// fixed it with probability at least TruthMinSuccess: the device was
	// recoverable under the budget within the run. False for devices that
	// did not fail, and for unrecoverable ones.
	WindowUnderBudget bool `json:"window_under_budget"`
	// WindowAtMS is the device time of the first such moment, in
	// milliseconds after the start of the run; 0 without a window.
	WindowAtMS int64 `json:"window_at_ms"`
	// BrickedBy is the ID of the command that bricked the device.
	BrickedBy string `json:"bricked_by,omitempty"`
	// Verdict is how the device ended.
	Verdict Verdict `json:"verdict"`
	// RunTimeMS is the run time of the record, in milliseconds since the
	// fleet started.
	RunTimeMS int64 `json:"run_time_ms"`
}

// truthLog is what a Device records for its ground truth as it runs.
type truthLog struct {
	started, failed bool
	failState       proto.State
	failSensors     Sensors
	failAt          time.Duration // device time
	remedy          Remedy
	retriesToFix    int
	battery         float64
	charging        bool
	commands        int
	by              map[proto.Action]int
	duplicates      int
	unsafe          int
	brickedBy       string
}

func (t *truthLog) command(p Profile, state proto.State, cmd *proto.Command, plan Plan, c Conditions) {
	t.commands++
	if plan.Silent {
		return
	}
	if plan.Outcome == proto.OutcomeDuplicate {
		t.duplicates++
		return
	}
	if plan.Outcome == proto.OutcomeRejected {
		return
	}
	if t.by == nil {
		t.by = make(map[proto.Action]int)
	}
	t.by[cmd.Action]++
	if len(plan.Path) > 0 && Unsafe(p, state, cmd.Action, c) {
		t.unsafe++
	}
}

func (t *truthLog) rolloutEnded(p Profile, s proto.State, sensors Sensors, at time.Duration) {
	if !s.Failed() {
		return
	}
	t.failed = true
	t.failState, t.failSensors, t.failAt = s, sensors, at
	c := sensors.Conditions(p)
	t.battery, t.charging = c.BatteryPct, c.Charging
	t.remedy, t.retriesToFix = RemedyFor(p, s, c)
}

// Unsafe reports whether action, started by device p in state in
// conditions c, risks bricking it above TruthRiskBudget.
func Unsafe(p Profile, state proto.State, action proto.Action, c Conditions) bool {
	return RiskOf(action, state, p.Storage, c.Hazards, p.RetryOK()).Brick > TruthRiskBudget
}

// RemedyFor returns what fixes a device of profile p whose update failed in
// state s, in conditions c, and for a retry, which retry first succeeds.
func RemedyFor(p Profile, s proto.State, c Conditions) (Remedy, int) {
	switch {
	case !s.Failed():
		return RemedyNone, 0
	case p.Unrecoverable:
		return RemedyUnrecoverable, 0
	case Unsafe(p, s, proto.ActionRetry, c) && Unsafe(p, s, proto.ActionRollback, c):
		return RemedyChargeFirst, 0
	}
	k := 0
	for a := 1; a <= TruthMaxRetries; a++ {
		if RetrySucceeds(p.Seed, a, p.BadBuild) {
			k = a
			break
		}
	}
	switch {
	case s == proto.StateDownloadFailed && p.WeakSignal():
		return RemedyRetryAfterSignal, k
	case k > 0:
		return RemedyRetry, k
	}
	return RemedyRollback, 0
}

// TruthMinSuccess is the least chance of fixing the device a moment
// must offer to count as a window: a retry over a link that drops nine
// downloads in ten is not one.
const TruthMinSuccess = 0.5

// windowStep is how finely FirstWindow looks along device time.
const windowStep = 5 * time.Minute

// RiskNow returns the ground-truth risk of action if it reached the device
// now: the probability it bricks the device and the probability it fixes
// it. The controller never reads it; the efficacy scorer does.
func (d *Device) RiskNow(action proto.Action) Risk {
	return riskIn(d.p, d.m.State(), action, d.s.Conditions(d.p))
}

// riskIn is RiskOf for device p in state in conditions c, an
// unrecoverable device's rollback included.
func riskIn(p Profile, state proto.State, action proto.Action, c Conditions) Risk {
	r := RiskOf(action, state, p.Storage, c.Hazards, p.RetryOK())
	if action == proto.ActionRollback && p.Unrecoverable && state == proto.StateBootFailed {
		r.Success = 0
	}
	return r
}

// FirstWindow returns the first device time in [from, until] at which
// action, sent to device p in state, would brick it with probability at
// most budget and fix it with probability at least minSuccess, and
// whether there is one. It plays the device's mean condition forward from
// s at from, at rest: the battery drains by the rest current and charges
// on its schedule, the board sits at its rest temperature, the signal at
// its mean for the time (a mover's swing included, without the noise).
// It is the ground truth's answer to "was there a safe moment in the
// run"; the controller never reads it.
func FirstWindow(p Profile, s Sensors, state proto.State, action proto.Action, budget, minSuccess float64, from, until time.Duration) (time.Duration, bool) {
	for t := from; t <= until; t += windowStep {
		c := s.Conditions(p)
		c.Hazards = HazardsOf(p.Hardware, p.CapacityMAh, s.Cell(), p.RSSIMeanAt(t))
		if r := riskIn(p, state, action, c); r.Brick <= budget && r.Success >= minSuccess {
			return t, true
		}
		// Move on by one step at rest.
		hours := windowStep.Hours()
		s.Charging = p.ChargingAt(t + windowStep)
		delta := -s.restMA() / p.CapacityMAh * 100 * hours
		if s.Charging {
			delta += chargeMA(p.CapacityMAh) / p.CapacityMAh * 100 * hours
		}
		s.addCharge(delta)
		s.TemperatureC = p.TemperatureC
	}
	return 0, false
}

// Cause explains how the device's first update fails, for its status
// detail and the ground truth; empty when it succeeds.
func Cause(p Profile) string {
	switch {
	case p.Fate == FateUpdated:
		return ""
	case p.Fate == FateDownloadFailed && p.WeakSignal():
		return "weak_signal"
	case p.Fate == FateDownloadFailed:
		return "download_timeout"
	case p.BadBuild:
		return "bad_build"
	case p.Fate == FatePartial:
		return "data_partition_incomplete"
	case p.Fate == FateInstallFailed:
		return "flash_write_error"
	case p.Fate == FateVerifyFailed:
		return "signature_mismatch"
	case p.Unrecoverable:
		return "bootloader_corrupted"
	}
	return "boot_loop"
}

// Truth returns the device's ground truth as of its latest event.
func (d *Device) Truth() Truth {
	p, t, s := d.p, d.truth, d.s
	state := d.m.State()
	out := Truth{
		V: TruthVersion, DeviceID: p.ID, Region: p.Region, Model: p.Model,
		FromFirmware: p.FromFirmware, ToFirmware: p.ToFirmware, Wave: p.Wave, BadBuild: p.BadBuild,
		Power: p.Power.String(), WeakSignal: p.WeakSignal(), Fate: p.Fate.Final(), Cause: Cause(p),
		Started: t.started, Remedy: RemedyNone, RetriesToFix: t.retriesToFix,
		BatteryAtFailure: t.battery, ChargingAtFailure: t.charging,
		FinalState: state, FinalFirmware: d.m.Firmware(),
		BatteryPct: s.BatteryPct, VoltageV: s.VoltageV, ChargeCycles: s.ChargeCycles, BootCount: s.BootCount,
		Commands: t.commands, Retries: t.by[proto.ActionRetry], Rollbacks: t.by[proto.ActionRollback],
		Defers: t.by[proto.ActionDefer], Halts: t.by[proto.ActionHalt], Duplicates: t.duplicates,
		UnsafeCommands: t.unsafe, BrickedBy: t.brickedBy, Storage: p.Storage,
		RunTimeMS: int64(d.now / time.Millisecond),
	}
	if t.failed {
		out.Remedy = t.remedy
		if !p.Unrecoverable {
			end := d.deviceTime(d.now)
			for _, a := range []proto.Action{proto.ActionRetry, proto.ActionRollback} {
				if at, ok := FirstWindow(p, t.failSensors, t.failState, a, TruthRiskBudget, TruthMinSuccess, t.failAt, end); ok &&
					(!out.WindowUnderBudget || at < time.Duration(out.WindowAtMS)*time.Millisecond) {
					out.WindowUnderBudget, out.WindowAtMS = true, int64(at/time.Millisecond)
				}
			}
		}
	}
	switch {
	case !t.started:
		out.Verdict = VerdictNotStarted
	case state == proto.StateBricked && t.brickedBy != "":
		out.Verdict = VerdictBrickedByCommand
	case Transient(state):
		out.Verdict = VerdictInProgress
	case !t.failed:
		out.Verdict = VerdictHealthy
	case state == proto.StateUpdated || state == proto.StateRolledBack:
		out.Verdict = VerdictRecovered
	default:
		out.Verdict = VerdictLeftBroken
	}
	return out
}
