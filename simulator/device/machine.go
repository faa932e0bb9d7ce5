package device

import (
	"errors"
	"fmt"

	"github.com/sentinel-iot/sentinel/proto"
)

// Command rules.
const (
	// RetrySuccess is the probability that a retry of the update succeeds.
	RetrySuccess = 0.8
	// RetrySuccessBadBuild is the same probability for a device installing
	// the bad build: retrying a broken build mostly fails again.
	RetrySuccessBadBuild = 0.15
	// TruthRiskBudget is the brick risk per command the ground truth calls
	// acceptable (the recovery policy's default budget, 1 in 10,000): a
	// command started above it is unsafe, and a device whose every command
	// is above it must charge first.
	TruthRiskBudget = 1e-4
)

// ErrTransition is wrapped by the error Enter returns for a move the state
// machine does not allow.
var ErrTransition = errors.New("device: transition not allowed")

// transitions lists, for each state, the states a device may move to next.
var transitions = map[proto.State][]proto.State{
	proto.StateIdle:           {proto.StateDownloading},
	proto.StateDownloading:    {proto.StateVerifying, proto.StateDownloadFailed},
	proto.StateVerifying:      {proto.StateInstalling, proto.StateVerifyFailed},
	proto.StateInstalling:     {proto.StateRebooting, proto.StateInstallFailed, proto.StateBricked},
	proto.StateRebooting:      {proto.StateUpdated, proto.StatePartial, proto.StateBootFailed},
	proto.StateUpdated:        {proto.StateRollingBack},
	proto.StateDownloadFailed: {proto.StateDownloading, proto.StateRollingBack},
	proto.StateVerifyFailed:   {proto.StateDownloading, proto.StateRollingBack},
	proto.StateInstallFailed:  {proto.StateInstalling, proto.StateRollingBack},
	proto.StatePartial:        {proto.StateInstalling, proto.StateRollingBack},
	proto.StateBootFailed:     {proto.StateInstalling, proto.StateRollingBack},
	proto.StateRollingBack:    {proto.StateRolledBack, proto.StateBricked, proto.StateBootFailed},
	proto.StateRolledBack:     {proto.StateInstalling},
	proto.StateBricked:        nil,
}

// CanTransition reports whether the state machine allows a move from one
// state to the next.
func CanTransition(from, to proto.State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transient reports whether s is a state a device passes through rather than
// rests in; a device in one is busy and refuses commands.
func Transient(s proto.State) bool {
	switch s {
	case proto.StateDownloading, proto.StateVerifying, proto.StateInstalling,
		proto.StateRebooting, proto.StateRollingBack:
		return true
	}
	return false
}

// RolloutPath returns the states a device with fate f walks through once its
// update starts, from idle, in order.
func RolloutPath(f Fate) []proto.State {
	switch f {
	case FatePartial:
		return []proto.State{proto.StateDownloading, proto.StateVerifying, proto.StateInstalling, proto.StateRebooting, proto.StatePartial}
	case FateInstallFailed:
		return []proto.State{proto.StateDownloading, proto.StateVerifying, proto.StateInstalling, proto.StateInstallFailed}
	case FateDownloadFailed:
		return []proto.State{proto.StateDownloading, proto.StateDownloadFailed}
	case FateVerifyFailed:
		return []proto.State{proto.StateDownloading, proto.StateVerifying, proto.StateVerifyFailed}
	case FateBootFailed:
		return []proto.State{proto.StateDownloading, proto.StateVerifying, proto.StateInstalling, proto.StateRebooting, proto.StateBootFailed}
	}
	return []proto.State{proto.StateDownloading, proto.StateVerifying, proto.StateInstalling, proto.StateRebooting, proto.StateUpdated}
}

// RetrySucceeds reports whether retry number attempt (from 1) of the device
// seeded with seed succeeds, conditions permitting. The draw is a pure
// function of its arguments, true with probability RetrySuccess, or
// RetrySuccessBadBuild for a device installing the bad build.
func RetrySucceeds(seed uint64, attempt int, badBuild bool) bool {
	p := RetrySuccess
	if badBuild {
		p = RetrySuccessBadBuild
	}
	return unit(seed, 0x7e7, uint64(attempt)) < p
}

// retryFailure returns the state a failed retry number attempt ends in:
// partial or install_failed, about half each.
func retryFailure(seed uint64, attempt int) proto.State {
	if unit(seed, 0xfa1, uint64(attempt)) < 0.5 {
		return proto.StatePartial
	}
	return proto.StateInstallFailed
}

// Conditions is what a device knows about itself when a command arrives.
type Conditions struct {
	// BatteryPct is the battery level now.
	BatteryPct float64
	// Charging is true while the device is on external power.
	Charging bool
	// RSSI is the signal strength now, in dBm.
	RSSI int
	// Hazards are the chances that a flash write loses power and that a
	// download fails, now (HazardsOf); zero means neither happens.
	Hazards
}

// Plan is a device's answer to a command: the states it walks through, in
// order, and the outcome it reports once it has entered the last one (at
// once when Path is empty).
type Plan struct {
	// Path is the states to enter, in order; empty when nothing moves.
	Path []proto.State
	// Outcome is the outcome to report.
	Outcome proto.Outcome
	// Detail explains the outcome for people reading the device's status.
	Detail string
	// Silent is true when the device does not answer at all (it is bricked).
	Silent bool
}

// Machine is one device's OTA state and firmware, with the rules that move
// them. It is not safe for concurrent use: one goroutine owns a device.
type Machine struct {
	state         proto.State
	firmware      string
	from, to      string
	seed          uint64
	storage       proto.Storage
	badBuild      bool
	unrecoverable bool
	halted        bool
	retries       int
	rollbacks     int
	applied       map[string]bool
}

// NewMachine returns the state machine of the device p describes, idle on
// its starting firmware.
func NewMachine(p Profile) *Machine {
	return &Machine{
		state:         proto.StateIdle,
		firmware:      p.FromFirmware,
		from:          p.FromFirmware,
		to:            p.ToFirmware,
		seed:          p.Seed,
		storage:       p.Storage,
		badBuild:      p.BadBuild,
		unrecoverable: p.Unrecoverable,
		applied:       make(map[string]bool),
	}
}

// State returns the device's OTA state.
func (m *Machine) State() proto.State { return m.state }

// Firmware returns the version the device runs now.
func (m *Machine) Firmware() string { return m.firmware }

// Target returns the version the rollout wants on the device.
func (m *Machine) Target() string { return m.to }

// Retries returns how many retry commands the device has applied.
func (m *Machine) Retries() int { return m.retries }

// Halted reports whether the device has obeyed a halt: it refuses retries
// and rollbacks until a person resets it.
func (m *Machine) Halted() bool { return m.halted }

// PowerLost reports whether the flash write of command number n (from 1,
// retries and rollbacks counted apart by salt) of the device seeded with
// seed loses power, in conditions c: a pure draw, true with probability
// c.FlashLoss.
func PowerLost(seed uint64, salt uint64, n int, c Conditions) bool {
	return unit(seed, 0xb0, salt, uint64(n)) < c.FlashLoss
}

// downloadFails reports whether download attempt n of the device fails in
// conditions c, with probability c.DownloadFail.
func downloadFails(seed uint64, n int, c Conditions) bool {
	return unit(seed, 0xd1, uint64(n)) < c.DownloadFail
}

// Enter moves the device to state next, updating its firmware: updated
// means the target version, rolled_back the previous one. It returns an
// error wrapping ErrTransition, and changes nothing, if the move is not
// allowed.
func (m *Machine) Enter(next proto.State) error {
	if !CanTransition(m.state, next) {
		return fmt.Errorf("%w: %s -> %s", ErrTransition, m.state, next)
	}
	m.state = next
	switch next {
	case proto.StateUpdated:
		m.firmware = m.to
	case proto.StateRolledBack:
		m.firmware = m.from
	}
	return nil
}

// Accept applies the command rules to cmd and returns the device's plan. It
// records cmd's ID, so the same ID is answered with a duplicate outcome and
// no action the next time. It changes neither state nor firmware: the caller
// walks the plan's path with Enter.
//
// The rules, each judged on the conditions at this moment: a bricked device
// does not answer. A retry re-applies the target firmware from a failed or
// rolled-back state and succeeds with probability RetrySuccess (far less
// for the bad build); one that must download again first fails the
// download with probability c.DownloadFail (the link, or a brown-out
// under the radio's current). The image write loses power with
// probability c.FlashLoss: a single-bank device is then bricked, an A/B
// device boots its old slot and reports install_failed. A rollback on A/B
// switches slots and cannot brick; on a single bank it rewrites the old
// image with the same risk. A device whose boot loader is corrupted
// (Profile.Unrecoverable) fails both and stays boot_failed. Defer is
// acknowledged and changes nothing; halt is acknowledged and makes the
// device refuse later retries and rollbacks. A device busy in a transient
// state rejects retry and rollback. Every draw is a pure function of the
// device's seed and the command's number, so a run is reproducible.
func (m *Machine) Accept(cmd *proto.Command, c Conditions) Plan {
	if m.state == proto.StateBricked {
		return Plan{Silent: true}
	}
	if m.applied[cmd.CommandID] {
		return Plan{Outcome: proto.OutcomeDuplicate, Detail: "command already applied"}
	}
	m.applied[cmd.CommandID] = true

	switch cmd.Action {
	case proto.ActionRetry:
		return m.retry(c)
	case proto.ActionRollback:
		return m.rollback(c)
	case proto.ActionDefer:
		return Plan{Outcome: proto.OutcomeOK, Detail: "deferred"}
	case proto.ActionHalt:
		m.halted = true
		return Plan{Outcome: proto.OutcomeOK, Detail: "halted"}
	}
	return Plan{Outcome: proto.OutcomeRejected, Detail: fmt.Sprintf("unknown action %q", cmd.Action)}
}

func (m *Machine) retry(c Conditions) Plan {
	switch {
	case Transient(m.state):
		return Plan{Outcome: proto.OutcomeRejected, Detail: "busy: " + string(m.state)}
	case m.halted:
		return Plan{Outcome: proto.OutcomeRejected, Detail: "halted: needs a person"}
	case m.state == proto.StateIdle:
		return Plan{Outcome: proto.OutcomeRejected, Detail: "update not started"}
	case m.state == proto.StateUpdated:
		return Plan{Outcome: proto.OutcomeOK, Detail: "already on target firmware"}
	}
	m.retries++
	var path []proto.State
	switch m.state {
	case proto.StateDownloadFailed, proto.StateVerifyFailed:
		if downloadFails(m.seed, m.retries, c) {
			return Plan{
				Path:    []proto.State{proto.StateDownloading, proto.StateDownloadFailed},
				Outcome: proto.OutcomeFailed,
				Detail:  fmt.Sprintf("download failed again at %d dBm", c.RSSI),
			}
		}
		path = []proto.State{proto.StateDownloading, proto.StateVerifying}
	}
	path = append(path, proto.StateInstalling)
	switch {
	case PowerLost(m.seed, saltRetry, m.retries, c) && m.storage != proto.StorageAB:
		path = append(path, proto.StateBricked)
		return Plan{Path: path, Outcome: proto.OutcomeFailed,
			Detail: fmt.Sprintf("power lost while flashing at %.1f%% battery", c.BatteryPct)}
	case PowerLost(m.seed, saltRetry, m.retries, c):
		// A/B: the half-written slot is never marked bootable; the device
		// resets and boots the old slot.
		path = append(path, proto.StateInstallFailed)
		return Plan{Path: path, Outcome: proto.OutcomeFailed,
			Detail: fmt.Sprintf("power lost while flashing at %.1f%% battery: booted the old slot", c.BatteryPct)}
	case m.unrecoverable:
		path = append(path, proto.StateRebooting, proto.StateBootFailed)
		return Plan{Path: path, Outcome: proto.OutcomeFailed, Detail: "boot loader corrupted: image does not boot"}
	case RetrySucceeds(m.seed, m.retries, m.badBuild):
		path = append(path, proto.StateRebooting, proto.StateUpdated)
		return Plan{Path: path, Outcome: proto.OutcomeOK, Detail: fmt.Sprintf("retry %d updated", m.retries)}
	case retryFailure(m.seed, m.retries) == proto.StatePartial:
		path = append(path, proto.StateRebooting, proto.StatePartial)
	default:
		path = append(path, proto.StateInstallFailed)
	}
	return Plan{Path: path, Outcome: proto.OutcomeFailed, Detail: fmt.Sprintf("retry %d ended %s", m.retries, path[len(path)-1])}
}

// Salts of the power-loss draws, so a retry and a rollback with the same
// number draw apart.
const (
	saltRetry    = 0x7e
	saltRollback = 0x7b
)

func (m *Machine) rollback(c Conditions) Plan {
	switch {
	case Transient(m.state):
		return Plan{Outcome: proto.OutcomeRejected, Detail: "busy: " + string(m.state)}
	case m.halted:
		return Plan{Outcome: proto.OutcomeRejected, Detail: "halted: needs a person"}
	case m.state == proto.StateIdle || m.state == proto.StateRolledBack:
		return Plan{Outcome: proto.OutcomeOK, Detail: "already on previous firmware"}
	}
	m.rollbacks++
	switch {
	case m.storage != proto.StorageAB && PowerLost(m.seed, saltRollback, m.rollbacks, c):
		// Single bank: the rollback rewrites the old image in place.
		return Plan{
			Path:    []proto.State{proto.StateRollingBack, proto.StateBricked},
			Outcome: proto.OutcomeFailed,
			Detail:  fmt.Sprintf("power lost during rollback at %.1f%% battery", c.BatteryPct),
		}
	case m.unrecoverable && m.state == proto.StateBootFailed:
		return Plan{Path: []proto.State{proto.StateRollingBack, proto.StateBootFailed}, Outcome: proto.OutcomeFailed,
			Detail: "boot loader corrupted: previous image does not boot either"}
	}
	return Plan{Path: []proto.State{proto.StateRollingBack, proto.StateRolledBack}, Outcome: proto.OutcomeOK, Detail: "rolled back"}
}
