package device

import (
	"testing"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/stretchr/testify/require"
)

func TestCanTransition(t *testing.T) {
	tests := []struct {
		name     string
		from, to proto.State
		want     bool
	}{
		{"rollout starts", proto.StateIdle, proto.StateDownloading, true},
		{"download done", proto.StateDownloading, proto.StateVerifying, true},
		{"download fails", proto.StateDownloading, proto.StateDownloadFailed, true},
		{"verified", proto.StateVerifying, proto.StateInstalling, true},
		{"installed", proto.StateInstalling, proto.StateRebooting, true},
		{"install fails", proto.StateInstalling, proto.StateInstallFailed, true},
		{"boots updated", proto.StateRebooting, proto.StateUpdated, true},
		{"boots partial", proto.StateRebooting, proto.StatePartial, true},
		{"retry partial", proto.StatePartial, proto.StateInstalling, true},
		{"retry install_failed", proto.StateInstallFailed, proto.StateInstalling, true},
		{"retry download_failed", proto.StateDownloadFailed, proto.StateDownloading, true},
		{"retry after rollback", proto.StateRolledBack, proto.StateInstalling, true},
		{"rollback partial", proto.StatePartial, proto.StateRollingBack, true},
		{"rollback updated", proto.StateUpdated, proto.StateRollingBack, true},
		{"rollback ends", proto.StateRollingBack, proto.StateRolledBack, true},
		{"rollback bricks", proto.StateRollingBack, proto.StateBricked, true},
		{"no skipping download", proto.StateIdle, proto.StateInstalling, false},
		{"no skipping reboot", proto.StateInstalling, proto.StateUpdated, false},
		{"idle does not roll back", proto.StateIdle, proto.StateRollingBack, false},
		{"bricked is final", proto.StateBricked, proto.StateRollingBack, false},
		{"bricked does not retry", proto.StateBricked, proto.StateInstalling, false},
		{"no self loop", proto.StatePartial, proto.StatePartial, false},
		{"offline is not an OTA state", proto.StateIdle, proto.StateOffline, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, CanTransition(tt.from, tt.to))
		})
	}
}

func TestRolloutPath(t *testing.T) {
	tests := []struct {
		fate Fate
		want []proto.State
	}{
		{FateUpdated, []proto.State{"downloading", "verifying", "installing", "rebooting", "updated"}},
		{FatePartial, []proto.State{"downloading", "verifying", "installing", "rebooting", "partial"}},
		{FateInstallFailed, []proto.State{"downloading", "verifying", "installing", "install_failed"}},
		{FateDownloadFailed, []proto.State{"downloading", "download_failed"}},
		{FateVerifyFailed, []proto.State{"downloading", "verifying", "verify_failed"}},
		{FateBootFailed, []proto.State{"downloading", "verifying", "installing", "rebooting", "boot_failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.fate.String(), func(t *testing.T) {
			path := RolloutPath(tt.fate)
			require.Equal(t, tt.want, path)
			require.Equal(t, tt.fate.Final(), path[len(path)-1])

			m := NewMachine(Profile{FromFirmware: "1.0", ToFirmware: "2.0", Fate: tt.fate})
			for _, s := range path {
				require.NoError(t, m.Enter(s))
			}
			require.Equal(t, tt.fate.Final(), m.State())
			if tt.fate == FateUpdated {
				require.Equal(t, "2.0", m.Firmware())
			} else {
				require.Equal(t, "1.0", m.Firmware())
			}
		})
	}
}

func TestEnterRefusesIllegalMove(t *testing.T) {
	m := NewMachine(Profile{FromFirmware: "1.0", ToFirmware: "2.0"})
	err := m.Enter(proto.StateUpdated)
	require.ErrorIs(t, err, ErrTransition)
	require.Equal(t, proto.StateIdle, m.State())
	require.Equal(t, "1.0", m.Firmware())
}

// seedWhere returns a device seed whose first retry succeeds (or fails) and,
// on failure, ends in the wanted state.
func seedWhere(t *testing.T, succeed bool, failState proto.State) uint64 {
	t.Helper()
	for s := uint64(1); s < 10000; s++ {
		if RetrySucceeds(s, 1, false) != succeed {
			continue
		}
		if succeed || retryFailure(s, 1) == failState {
			return s
		}
	}
	t.Fatal("no seed found")
	return 0
}

func TestAccept(t *testing.T) {
	okSeed := seedWhere(t, true, "")
	partialSeed := seedWhere(t, false, proto.StatePartial)
	installSeed := seedWhere(t, false, proto.StateInstallFailed)
	healthy := Conditions{BatteryPct: 80, RSSI: -70}
	// lossy is a moment at which every flash write loses power, weak one
	// at which every download fails.
	lossy := Conditions{BatteryPct: 9, RSSI: -70, Hazards: Hazards{FlashLoss: 1}}
	weak := func(rssi int) Conditions {
		return Conditions{BatteryPct: 80, RSSI: rssi, Hazards: Hazards{DownloadFail: 1}}
	}

	tests := []struct {
		name     string
		state    proto.State
		seed     uint64
		action   proto.Action
		cond     Conditions
		path     []proto.State
		outcome  proto.Outcome
		silent   bool
		firmware string // after walking the path

		unrecoverable bool
		storage       proto.Storage
	}{
		{name: "retry partial succeeds", state: proto.StatePartial, seed: okSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry install_failed succeeds", state: proto.StateInstallFailed, seed: okSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry fails partial", state: proto.StatePartial, seed: partialSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "rebooting", "partial"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "retry fails install_failed", state: proto.StatePartial, seed: installSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "install_failed"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "retry download_failed good signal", state: proto.StateDownloadFailed, seed: okSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"downloading", "verifying", "installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry download_failed weak signal fails again", state: proto.StateDownloadFailed, seed: okSeed, action: proto.ActionRetry,
			cond: weak(-110), path: []proto.State{"downloading", "download_failed"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "retry after rollback", state: proto.StateRolledBack, seed: okSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry updated is a no-op", state: proto.StateUpdated, action: proto.ActionRetry, cond: healthy,
			outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry while busy rejected", state: proto.StateInstalling, action: proto.ActionRetry, cond: healthy,
			outcome: proto.OutcomeRejected, firmware: "1.0"},
		{name: "retry before rollout rejected", state: proto.StateIdle, action: proto.ActionRetry, cond: healthy,
			outcome: proto.OutcomeRejected, firmware: "1.0"},
		{name: "rollback partial", state: proto.StatePartial, action: proto.ActionRollback, cond: healthy,
			path: []proto.State{"rolling_back", "rolled_back"}, outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "rollback updated", state: proto.StateUpdated, action: proto.ActionRollback, cond: healthy,
			path: []proto.State{"rolling_back", "rolled_back"}, outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "single-bank rollback losing power bricks", state: proto.StatePartial, action: proto.ActionRollback, storage: proto.StorageSingle,
			cond: lossy, path: []proto.State{"rolling_back", "bricked"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "unknown layout counts as single bank", state: proto.StatePartial, action: proto.ActionRollback,
			cond: lossy, path: []proto.State{"rolling_back", "bricked"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "A/B rollback is a slot switch and cannot brick", state: proto.StatePartial, action: proto.ActionRollback, storage: proto.StorageAB,
			cond: lossy, path: []proto.State{"rolling_back", "rolled_back"}, outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "rollback on low battery while charging is safe", state: proto.StatePartial, action: proto.ActionRollback,
			cond: Conditions{BatteryPct: 9, Charging: true, RSSI: -70}, path: []proto.State{"rolling_back", "rolled_back"}, outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "rollback with a one-in-a-billion loss goes through", state: proto.StateInstallFailed, action: proto.ActionRollback,
			cond: Conditions{BatteryPct: 40, RSSI: -70, Hazards: Hazards{FlashLoss: 1e-9}}, path: []proto.State{"rolling_back", "rolled_back"}, outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "rollback while busy rejected", state: proto.StateRebooting, action: proto.ActionRollback, cond: healthy,
			outcome: proto.OutcomeRejected, firmware: "1.0"},
		{name: "rollback rolled_back is a no-op", state: proto.StateRolledBack, action: proto.ActionRollback, cond: healthy,
			outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "defer acknowledged", state: proto.StatePartial, action: proto.ActionDefer, cond: healthy,
			outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "halt acknowledged", state: proto.StatePartial, action: proto.ActionHalt, cond: healthy,
			outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "retry verify_failed downloads again", state: proto.StateVerifyFailed, seed: okSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"downloading", "verifying", "installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry verify_failed on weak signal fails the download", state: proto.StateVerifyFailed, seed: okSeed, action: proto.ActionRetry,
			cond: weak(-112), path: []proto.State{"downloading", "download_failed"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "retry boot_failed", state: proto.StateBootFailed, seed: okSeed, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "single-bank retry losing power bricks mid-flash", state: proto.StatePartial, seed: okSeed, action: proto.ActionRetry, storage: proto.StorageSingle,
			cond: lossy, path: []proto.State{"installing", "bricked"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "A/B retry losing power boots the old slot", state: proto.StatePartial, seed: okSeed, action: proto.ActionRetry, storage: proto.StorageAB,
			cond: lossy, path: []proto.State{"installing", "install_failed"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "retry on low battery while charging is safe", state: proto.StatePartial, seed: okSeed, action: proto.ActionRetry,
			cond: Conditions{BatteryPct: 9, Charging: true, RSSI: -70}, path: []proto.State{"installing", "rebooting", "updated"}, outcome: proto.OutcomeOK, firmware: "2.0"},
		{name: "retry download_failed on low battery bricks after the download", state: proto.StateDownloadFailed, seed: okSeed, action: proto.ActionRetry,
			cond: Conditions{BatteryPct: 3, RSSI: -70, Hazards: Hazards{FlashLoss: 1}}, path: []proto.State{"downloading", "verifying", "installing", "bricked"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "retry unrecoverable stays boot_failed", state: proto.StateBootFailed, seed: okSeed, unrecoverable: true, action: proto.ActionRetry, cond: healthy,
			path: []proto.State{"installing", "rebooting", "boot_failed"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "rollback unrecoverable stays boot_failed", state: proto.StateBootFailed, unrecoverable: true, action: proto.ActionRollback, cond: healthy,
			path: []proto.State{"rolling_back", "boot_failed"}, outcome: proto.OutcomeFailed, firmware: "1.0"},
		{name: "rollback verify_failed", state: proto.StateVerifyFailed, action: proto.ActionRollback, cond: healthy,
			path: []proto.State{"rolling_back", "rolled_back"}, outcome: proto.OutcomeOK, firmware: "1.0"},
		{name: "bricked device is silent", state: proto.StateBricked, action: proto.ActionRetry, cond: healthy,
			silent: true, firmware: "1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := machineIn(t, tt.state, tt.seed)
			m.unrecoverable, m.storage = tt.unrecoverable, tt.storage
			plan := m.Accept(&proto.Command{CommandID: "c-1", Action: tt.action}, tt.cond)
			require.Equal(t, tt.silent, plan.Silent)
			require.Equal(t, tt.outcome, plan.Outcome)
			if len(tt.path) == 0 {
				require.Empty(t, plan.Path)
			} else {
				require.Equal(t, tt.path, plan.Path)
			}
			require.Equal(t, tt.state, m.State(), "Accept must not move the device")
			for _, s := range plan.Path {
				require.NoError(t, m.Enter(s))
			}
			require.Equal(t, tt.firmware, m.Firmware())
		})
	}
}

func TestAcceptDuplicate(t *testing.T) {
	m := machineIn(t, proto.StatePartial, seedWhere(t, true, ""))
	cmd := &proto.Command{CommandID: "c-42", Action: proto.ActionRetry}

	first := m.Accept(cmd, Conditions{BatteryPct: 80, RSSI: -70})
	require.Equal(t, proto.OutcomeOK, first.Outcome)
	for _, s := range first.Path {
		require.NoError(t, m.Enter(s))
	}
	require.Equal(t, 1, m.Retries())

	again := m.Accept(cmd, Conditions{BatteryPct: 80, RSSI: -70})
	require.Equal(t, proto.OutcomeDuplicate, again.Outcome)
	require.Empty(t, again.Path)
	require.Equal(t, 1, m.Retries(), "a duplicate is not applied again")

	// A duplicate rollback is not applied either, even on an empty battery.
	rb := &proto.Command{CommandID: "c-43", Action: proto.ActionRollback}
	require.Equal(t, proto.OutcomeOK, m.Accept(rb, Conditions{BatteryPct: 80}).Outcome)
	require.Equal(t, proto.OutcomeDuplicate, m.Accept(rb, Conditions{BatteryPct: 1}).Outcome)
}

func TestHaltRefusesLaterCommands(t *testing.T) {
	m := machineIn(t, proto.StatePartial, seedWhere(t, true, ""))
	healthy := Conditions{BatteryPct: 80, RSSI: -70}
	require.Equal(t, proto.OutcomeOK, m.Accept(&proto.Command{CommandID: "h", Action: proto.ActionHalt}, healthy).Outcome)
	require.True(t, m.Halted())
	for _, a := range []proto.Action{proto.ActionRetry, proto.ActionRollback} {
		plan := m.Accept(&proto.Command{CommandID: "after-" + string(a), Action: a}, healthy)
		require.Equal(t, proto.OutcomeRejected, plan.Outcome, a)
		require.Empty(t, plan.Path)
	}
	require.Equal(t, proto.OutcomeOK, m.Accept(&proto.Command{CommandID: "d", Action: proto.ActionDefer}, healthy).Outcome)
}

func TestRetrySucceedsRate(t *testing.T) {
	ok := 0
	const n = 20000
	for i := range n {
		if RetrySucceeds(uint64(i)*7919, 1+i%3, false) {
			ok++
		}
	}
	require.InDelta(t, RetrySuccess, float64(ok)/n, 0.02)
	require.Equal(t, RetrySucceeds(12345, 2, false), RetrySucceeds(12345, 2, false), "deterministic")
	bad := 0
	for i := range n {
		if RetrySucceeds(uint64(i)*7919, 1+i%3, true) {
			bad++
		}
	}
	require.InDelta(t, RetrySuccessBadBuild, float64(bad)/n, 0.02, "the bad build mostly fails again")
}

// machineIn returns a machine walked into state along legal transitions.
func machineIn(t *testing.T, state proto.State, seed uint64) *Machine {
	t.Helper()
	m := NewMachine(Profile{FromFirmware: "1.0", ToFirmware: "2.0", Seed: seed})
	paths := map[proto.State][]proto.State{
		proto.StateIdle:           nil,
		proto.StateInstalling:     {"downloading", "verifying", "installing"},
		proto.StateRebooting:      {"downloading", "verifying", "installing", "rebooting"},
		proto.StateUpdated:        RolloutPath(FateUpdated),
		proto.StatePartial:        RolloutPath(FatePartial),
		proto.StateInstallFailed:  RolloutPath(FateInstallFailed),
		proto.StateDownloadFailed: RolloutPath(FateDownloadFailed),
		proto.StateVerifyFailed:   RolloutPath(FateVerifyFailed),
		proto.StateBootFailed:     RolloutPath(FateBootFailed),
		proto.StateRolledBack:     append(RolloutPath(FatePartial), "rolling_back", "rolled_back"),
		proto.StateBricked:        append(RolloutPath(FatePartial), "rolling_back", "bricked"),
	}
	path, ok := paths[state]
	require.True(t, ok, "no path to %s", state)
	for _, s := range path {
		require.NoError(t, m.Enter(s))
	}
	require.Equal(t, state, m.State())
	return m
}
