package device

import (
	"testing"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/stretchr/testify/require"
)

var wall = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func timing() Timing {
	return Timing{TelemetryInterval: 2 * time.Second, StepDuration: time.Second, Join: 0, RolloutStart: 3 * time.Second, TimeScale: 60}
}

// encodeAll encodes msgs with their kinds, for comparing runs.
func encodeAll(t *testing.T, msgs []Msg) []string {
	t.Helper()
	out := make([]string, len(msgs))
	for i, m := range msgs {
		b, err := proto.Encode(m.Message)
		require.NoError(t, err)
		out[i] = string(m.Kind) + " " + string(b)
	}
	return out
}

// profileWith returns a profile of spec(seed) with fate f, and its index.
func profileWith(t *testing.T, f Fate, ok func(Profile) bool) Profile {
	t.Helper()
	ps, err := Generate(spec(11, 3000))
	require.NoError(t, err)
	for _, p := range ps {
		if p.Fate == f && (ok == nil || ok(p)) {
			return p
		}
	}
	t.Fatalf("no device with fate %s", f)
	return Profile{}
}

// TestDeviceDeterministic: the same seed gives the same fleet, failures
// and telemetry sequence, however finely the caller slices time.
func TestDeviceDeterministic(t *testing.T) {
	run := func(seed int64, slice time.Duration) [][]string {
		ps, err := Generate(spec(seed, 200))
		require.NoError(t, err)
		out := make([][]string, len(ps))
		for i, p := range ps {
			tm := timing()
			tm.Join = time.Duration(i) * 10 * time.Millisecond
			tm.RolloutStart = time.Duration(p.RolloutAt * float64(5*time.Second))
			d := NewDevice(p, tm)
			var msgs []Msg
			for at := time.Duration(0); at <= 2*time.Minute; at += slice {
				msgs = d.Advance(at, wall, msgs)
			}
			msgs = d.Advance(2*time.Minute, wall, msgs)
			out[i] = encodeAll(t, msgs)
		}
		return out
	}
	a, b, c := run(9, time.Second), run(9, 37*time.Millisecond), run(10, time.Second)
	require.Equal(t, a, b, "same seed, same messages, whatever the slicing")
	require.NotEqual(t, a, c)
	for i := range a {
		require.Greater(t, len(a[i]), 50, "a device reports every 2s for 2 minutes")
	}
}

func TestDeviceRolloutTimeline(t *testing.T) {
	p := profileWith(t, FatePartial, func(p Profile) bool { return p.BatteryPct > 50 && p.Power == PowerBattery })
	d := NewDevice(p, timing())
	require.Equal(t, time.Duration(0), d.Due())
	msgs := d.Advance(0, wall, nil)
	require.Len(t, msgs, 2, "joining reports a status and a reading")
	require.Equal(t, proto.KindStatus, msgs[0].Kind)
	require.Equal(t, "connected", msgs[0].Message.(*proto.StatusEvent).Detail)
	require.True(t, d.Joined())

	msgs = d.Advance(time.Minute, wall, nil)
	var states []proto.State
	seq := uint64(2)
	for _, m := range msgs {
		switch v := m.Message.(type) {
		case *proto.StatusEvent:
			states = append(states, v.State)
			require.Equal(t, seq+1, v.Seq)
			seq = v.Seq
		case *proto.Telemetry:
			require.Equal(t, seq+1, v.Seq)
			seq = v.Seq
			require.NoError(t, v.Validate())
		}
	}
	require.Equal(t, []proto.State{"downloading", "verifying", "installing", "rebooting", "partial"}, states)
	require.Less(t, d.Sensors().BatteryPct, p.BatteryPct, "the update and the minute (an hour of device time) drain the battery")
	require.Equal(t, p.BootCount+1, d.Sensors().BootCount)

	tr := d.Truth()
	require.Equal(t, proto.StatePartial, tr.Fate)
	require.Equal(t, proto.StatePartial, tr.FinalState)
	require.Equal(t, VerdictLeftBroken, tr.Verdict)
	require.Contains(t, []Remedy{RemedyRetry, RemedyRollback}, tr.Remedy)
	require.True(t, tr.Started)
}

func TestDeviceWillSeq(t *testing.T) {
	p := profileWith(t, FateUpdated, nil)
	d := NewDevice(p, timing())
	w1 := d.Will(wall)
	require.Equal(t, uint64(WillSeqGap), w1.Seq)
	require.Equal(t, proto.StateOffline, w1.State)
	require.NoError(t, w1.Validate())
	msgs := d.Advance(10*time.Second, wall, nil)
	require.Less(t, d.Seq(), w1.Seq, "messages on the connection sort before its will")
	require.NotEmpty(t, msgs)

	// Reconnect: the counter jumps past the first will, whether or not
	// the broker published it.
	w2 := d.Will(wall)
	require.Equal(t, w1.Seq+WillSeqGap, w2.Seq)
	msgs = d.Connected(wall, nil)
	require.Len(t, msgs, 2)
	require.Greater(t, msgs[0].Message.(*proto.StatusEvent).Seq, w1.Seq)
	require.Less(t, msgs[1].Message.(*proto.Telemetry).Seq, w2.Seq)
}

func TestDeviceCommandsAndTruth(t *testing.T) {
	cmd := func(id string, a proto.Action) *proto.Command {
		return &proto.Command{Header: proto.NewHeader("x", wall, 1), CommandID: id, Action: a}
	}
	tests := []struct {
		name    string
		fate    Fate
		pick    func(Profile) bool
		cmds    []*proto.Command
		edit    func(*Profile)
		verdict Verdict
		unsafe  int
	}{
		{name: "rollback on an empty battery bricks", fate: FatePartial,
			pick: func(p Profile) bool {
				return p.Power == PowerBattery && p.PlugInFor == 0 && p.Storage == proto.StorageSingle
			},
			edit:    func(p *Profile) { p.BatteryPct = 0.5 }, // under the brown-out voltage at rest
			cmds:    []*proto.Command{cmd("rb", proto.ActionRollback)},
			verdict: VerdictBrickedByCommand, unsafe: 1},
		{name: "rollback on a good battery recovers", fate: FateInstallFailed,
			pick:    func(p Profile) bool { return p.BatteryPct > 60 },
			cmds:    []*proto.Command{cmd("rb", proto.ActionRollback), cmd("rb", proto.ActionRollback)},
			verdict: VerdictRecovered},
		{name: "defer changes nothing", fate: FateVerifyFailed,
			cmds:    []*proto.Command{cmd("d", proto.ActionDefer)},
			verdict: VerdictLeftBroken},
		{name: "healthy device", fate: FateUpdated, verdict: VerdictHealthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := profileWith(t, tt.fate, tt.pick)
			if tt.edit != nil {
				tt.edit(&p)
			}
			tm := timing()
			tm.TimeScale = 1 // keep the battery where it is
			d := NewDevice(p, tm)
			at := 30 * time.Second
			d.Advance(at, wall, nil)
			for _, c := range tt.cmds {
				at += 10 * time.Second
				d.Command(at, wall, c, nil)
				at += 10 * time.Second
				d.Advance(at, wall, nil)
			}
			tr := d.Truth()
			require.Equal(t, tt.verdict, tr.Verdict)
			require.Equal(t, tt.unsafe, tr.UnsafeCommands)
			require.Equal(t, len(tt.cmds), tr.Commands)
			if tt.verdict == VerdictBrickedByCommand {
				require.Equal(t, "rb", tr.BrickedBy)
				require.Equal(t, RemedyChargeFirst, tr.Remedy)
				require.Empty(t, d.Advance(at+time.Minute, wall, nil), "a bricked device says nothing")
			}
			if len(tt.cmds) == 2 {
				require.Equal(t, 1, tr.Duplicates)
			}
		})
	}
}

func TestRemedyFor(t *testing.T) {
	var fixable, unfixable uint64
	for s := uint64(1); fixable == 0 || unfixable == 0; s++ {
		ok := false
		for a := 1; a <= TruthMaxRetries; a++ {
			ok = ok || RetrySucceeds(s, a, true)
		}
		if ok && RetrySucceeds(s, 1, true) {
			fixable = s
		}
		if !ok {
			unfixable = s
		}
	}
	good := Conditions{BatteryPct: 80, RSSI: -70}
	low := Conditions{BatteryPct: 8, RSSI: -70, Hazards: Hazards{FlashLoss: 0.01}}
	tests := []struct {
		name  string
		p     Profile
		state proto.State
		c     Conditions
		want  Remedy
		k     int
	}{
		{"updated needs nothing", Profile{}, proto.StateUpdated, good, RemedyNone, 0},
		{"retry fixes", Profile{Seed: fixable, BadBuild: true}, proto.StatePartial, good, RemedyRetry, 1},
		{"retries keep failing", Profile{Seed: unfixable, BadBuild: true}, proto.StateInstallFailed, good, RemedyRollback, 0},
		{"low battery", Profile{Seed: fixable}, proto.StatePartial, low, RemedyChargeFirst, 0},
		{"low battery while charging", Profile{Seed: fixable, BadBuild: true}, proto.StatePartial, Conditions{BatteryPct: 8, Charging: true}, RemedyRetry, 1},
		{"low battery on A/B", Profile{Seed: fixable, BadBuild: true, Hardware: Hardware{Storage: proto.StorageAB}}, proto.StatePartial, low, RemedyRetry, 1},
		{"weak signal download", Profile{Seed: fixable, BadBuild: true, RSSIMean: -110}, proto.StateDownloadFailed, good, RemedyRetryAfterSignal, 1},
		{"corrupted boot loader", Profile{Unrecoverable: true}, proto.StateBootFailed, good, RemedyUnrecoverable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, k := RemedyFor(tt.p, tt.state, tt.c)
			require.Equal(t, tt.want, r)
			require.Equal(t, tt.k, k)
		})
	}
}
