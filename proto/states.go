package proto

// State is a device's OTA state, as it reports it on its status topic.
type State string

// The OTA states of DESIGN.md. A device moves idle -> downloading ->
// verifying -> installing -> rebooting -> updated, or stops in one of the
// failure states until a command moves it on.
const (
	StateIdle           State = "idle"
	StateDownloading    State = "downloading"
	StateVerifying      State = "verifying"
	StateInstalling     State = "installing"
	StateRebooting      State = "rebooting"
	StateUpdated        State = "updated"
	StateDownloadFailed State = "download_failed"
	StateVerifyFailed   State = "verify_failed"
	StateInstallFailed  State = "install_failed"
	// StatePartial means some partitions were written and the device boots,
	// but the update is incomplete: the hard case recovery exists for.
	StatePartial     State = "partial"
	StateBootFailed  State = "boot_failed"
	StateRollingBack State = "rolling_back"
	StateRolledBack  State = "rolled_back"
	StateBricked     State = "bricked"
	// StateOffline is published by the broker as a device's Last Will.
	StateOffline State = "offline"
)

var states = map[State]bool{
	StateIdle: true, StateDownloading: true, StateVerifying: true, StateInstalling: true,
	StateRebooting: true, StateUpdated: true, StateDownloadFailed: true, StateVerifyFailed: true,
	StateInstallFailed: true, StatePartial: true, StateBootFailed: true, StateRollingBack: true,
	StateRolledBack: true, StateBricked: true, StateOffline: true,
}

// Valid reports whether s is a defined state.
func (s State) Valid() bool { return states[s] }

// Failed reports whether s is a failure the recoverer may act on.
func (s State) Failed() bool {
	switch s {
	case StateDownloadFailed, StateVerifyFailed, StateInstallFailed, StatePartial, StateBootFailed:
		return true
	}
	return false
}

// Action is what a command asks a device to do, or what a decision chose.
type Action string

// The actions. ActionNone appears only in decisions: "no command, because...".
const (
	// ActionRetry re-applies the target firmware.
	ActionRetry Action = "retry"
	// ActionRollback restores the previous firmware.
	ActionRollback Action = "rollback"
	// ActionDefer holds the device until a condition holds (charging, battery, signal).
	ActionDefer Action = "defer"
	// ActionHalt stops touching the device; a person must look at it.
	ActionHalt Action = "halt"
	// ActionNone records a decision to do nothing.
	ActionNone Action = "none"
)

// Valid reports whether a is a defined action.
func (a Action) Valid() bool {
	switch a {
	case ActionRetry, ActionRollback, ActionDefer, ActionHalt, ActionNone:
		return true
	}
	return false
}

// Outcome is how a device says a command ended.
type Outcome string

// The outcomes of a command.
const (
	// OutcomeOK means the command did what it asked.
	OutcomeOK Outcome = "ok"
	// OutcomeFailed means the device tried and failed.
	OutcomeFailed Outcome = "failed"
	// OutcomeRejected means the device refused it (for example, unsafe now).
	OutcomeRejected Outcome = "rejected"
	// OutcomeDuplicate means the command ID was already applied; nothing was done again.
	OutcomeDuplicate Outcome = "duplicate"
)

// Valid reports whether o is a defined outcome.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomeOK, OutcomeFailed, OutcomeRejected, OutcomeDuplicate:
		return true
	}
	return false
}
