package recoverer

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
)

// The tracker is the recoverer without the network: these tests drive it
// with messages and a hand-moved clock and read what it decides.

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

var start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type harness struct {
	t   *testing.T
	tr  *tracker
	now time.Time
	seq uint64
	ids int
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: start}
	h.tr = newTracker(policy.Config{BackoffBase: time.Second, BackoffMax: 4 * time.Second, Jitter: -1})
	h.tr.newID = func() string { h.ids++; return fmt.Sprintf("cmd-%d", h.ids) }
	return h
}

func (h *harness) telemetry(dev string, battery float64, charging bool, rssi int) []output {
	h.t.Helper()
	h.seq++
	m := &proto.Telemetry{Header: proto.NewHeader(dev, h.now, h.seq), Region: "eu", Firmware: "1.0.0",
		State: proto.StateIdle, BatteryPct: battery, Charging: charging, RSSI: rssi}
	require.NoError(h.t, m.Validate())
	v, outs := h.tr.telemetry("eu", m, h.now)
	require.Equal(h.t, accepted, v)
	return outs
}

func (h *harness) statusSeq(dev string, seq uint64, s proto.State, result *proto.CommandResult) (verdict, []output) {
	h.t.Helper()
	fw := "1.0.0"
	if s == proto.StateUpdated {
		fw = "1.1.0"
	}
	m := &proto.StatusEvent{Header: proto.NewHeader(dev, h.now, seq), Region: "eu", State: s,
		Firmware: fw, TargetFirmware: "1.1.0", Result: result}
	require.NoError(h.t, m.Validate())
	return h.tr.status("eu", m, h.now)
}

func (h *harness) status(dev string, s proto.State, result *proto.CommandResult) []output {
	h.t.Helper()
	h.seq++
	v, outs := h.statusSeq(dev, h.seq, s, result)
	require.Equal(h.t, accepted, v)
	return outs
}

// one asserts a single decision with the given action and reason and
// returns it; command says whether it must carry a command.
func one(t *testing.T, outs []output, action proto.Action, reason string, command bool) output {
	t.Helper()
	require.Len(t, outs, 1)
	o := outs[0]
	require.Equal(t, action, o.decision.Action, "reason %q", o.decision.Reason)
	require.Equal(t, reason, o.decision.Reason)
	require.NoError(t, o.decision.Validate())
	if !command {
		require.Nil(t, o.command)
		require.Empty(t, o.decision.CommandID)
		return o
	}
	require.NotNil(t, o.command)
	require.NoError(t, o.command.Validate())
	require.Equal(t, action, o.command.Action)
	require.Equal(t, o.command.CommandID, o.decision.CommandID)
	return o
}

func failed(id string, a proto.Action) *proto.CommandResult {
	return &proto.CommandResult{CommandID: id, Action: a, Outcome: proto.OutcomeFailed}
}

func TestTrackerRetryThenRollback(t *testing.T) {
	h := newHarness(t)
	require.Empty(t, h.telemetry("d1", 80, false, -70))
	require.Empty(t, h.status("d1", proto.StateIdle, nil))
	require.Empty(t, h.status("d1", proto.StateDownloading, nil), "no decision mid-update")

	o := one(t, h.status("d1", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	require.Equal(t, "1.1.0", o.command.TargetFirmware)
	require.Equal(t, 0, o.decision.Attempt)
	require.Equal(t, 80.0, o.decision.BatteryPct)

	for retry := 2; retry <= 3; retry++ {
		id := o.command.CommandID
		// The retry fails: back off.
		b := one(t, h.status("d1", proto.StatePartial, failed(id, proto.ActionRetry)), proto.ActionNone, policy.ReasonBackoff, false)
		require.Equal(t, retry-1, b.decision.Attempt)
		require.Empty(t, h.tr.tick(h.now.Add(time.Millisecond)), "backoff not over")
		require.Empty(t, h.telemetry("d1", 80, false, -70), "same decision is not republished")
		h.now = h.now.Add(h.tr.cfg.Backoff(retry - 1))
		o = one(t, h.tr.tick(h.now), proto.ActionRetry, policy.ReasonRetryable, true)
		require.Equal(t, retry-1, o.decision.Attempt)
	}

	// The third retry fails too: roll back to the firmware it ran before.
	o = one(t, h.status("d1", proto.StatePartial, failed(o.command.CommandID, proto.ActionRetry)), proto.ActionRollback, policy.ReasonRetriesExhausted, true)
	require.Equal(t, "1.0.0", o.command.TargetFirmware)
	require.Equal(t, 3, o.decision.Attempt)

	// It succeeds: the failure is over, and a new one starts from zero.
	require.Empty(t, h.status("d1", proto.StateRollingBack, nil))
	require.Empty(t, h.status("d1", proto.StateRolledBack, &proto.CommandResult{CommandID: o.command.CommandID, Action: proto.ActionRollback, Outcome: proto.OutcomeOK}))
	o = one(t, h.status("d1", proto.StateInstallFailed, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	require.Equal(t, 0, o.decision.Attempt)
}

func TestTrackerRollbackFloor(t *testing.T) {
	h := newHarness(t)
	h.telemetry("d1", 35, false, -70) // enough for a retry, not for a rollback
	o := one(t, h.status("d1", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	for range 2 {
		h.status("d1", proto.StatePartial, failed(o.command.CommandID, proto.ActionRetry))
		h.now = h.now.Add(time.Minute)
		o = one(t, h.tr.tick(h.now), proto.ActionRetry, policy.ReasonRetryable, true)
	}
	d := one(t, h.status("d1", proto.StatePartial, failed(o.command.CommandID, proto.ActionRetry)),
		proto.ActionDefer, policy.ReasonBelowRollbackFloor, true)
	require.Equal(t, 35.0, d.decision.BatteryPct)

	// Still below the floor: the defer in force is not sent again.
	one(t, h.status("d1", proto.StatePartial, nil), proto.ActionDefer, policy.ReasonBelowRollbackFloor, false)
	require.Empty(t, h.telemetry("d1", 39, false, -70))
	// Charged above the floor: the reading alone triggers the rollback.
	one(t, h.telemetry("d1", 41, false, -70), proto.ActionRollback, policy.ReasonRetriesExhausted, true)
}

func TestTrackerDuplicatesAndOrder(t *testing.T) {
	h := newHarness(t)
	h.telemetry("d1", 80, false, -70)
	v, outs := h.statusSeq("d1", 10, proto.StatePartial, nil)
	require.Equal(t, accepted, v)
	o := one(t, outs, proto.ActionRetry, policy.ReasonRetryable, true)

	for _, seq := range []uint64{10, 9, 1} {
		v, outs = h.statusSeq("d1", seq, proto.StatePartial, nil)
		require.Equal(t, duplicate, v, "seq %d", seq)
		require.Empty(t, outs)
	}
	// A newer failed status while the retry is out: no second command.
	_, outs = h.statusSeq("d1", 11, proto.StatePartial, nil)
	one(t, outs, proto.ActionNone, policy.ReasonCommandOpen, false)
	// Telemetry has its own sequence: seq 6 is new there though status is at 11.
	h.seq = 5
	require.Empty(t, h.telemetry("d1", 80, false, -70))
	m := &proto.Telemetry{Header: proto.NewHeader("d1", h.now, 1), Region: "eu", Firmware: "1.0.0", State: proto.StateIdle, BatteryPct: 5, RSSI: -70}
	v, _ = h.tr.telemetry("eu", m, h.now)
	require.Equal(t, duplicate, v)
	require.Equal(t, 80.0, h.tr.device("eu", "d1").tel.BatteryPct, "an old reading must not overwrite a new one")

	// A result for a command this recoverer does not have open changes nothing.
	_, outs = h.statusSeq("d1", 12, proto.StatePartial, failed("someone-else", proto.ActionRetry))
	one(t, outs, proto.ActionNone, policy.ReasonCommandOpen, false)
	_, outs = h.statusSeq("d1", 13, proto.StatePartial, failed(o.command.CommandID, proto.ActionRetry))
	one(t, outs, proto.ActionNone, policy.ReasonBackoff, false)
}

func TestTrackerNeverBlind(t *testing.T) {
	h := newHarness(t)
	one(t, h.status("d1", proto.StatePartial, nil), proto.ActionDefer, policy.ReasonNoTelemetry, true)
	one(t, h.status("d1", proto.StatePartial, nil), proto.ActionDefer, policy.ReasonNoTelemetry, false)
	o := one(t, h.telemetry("d1", 10, false, -70), proto.ActionDefer, policy.ReasonBatteryLow, true)
	require.Equal(t, 10.0, o.decision.BatteryPct)
	require.Empty(t, h.telemetry("d1", 10, true, -70), "charging on 10 % is no guard: still battery_low")
	one(t, h.telemetry("d1", 25, true, -70), proto.ActionRetry, policy.ReasonRetryable, true)

	h2 := newHarness(t)
	d := one(t, h2.status("d2", proto.StateBootFailed, nil), proto.ActionDefer, policy.ReasonNoTelemetry, true)
	require.Equal(t, -1.0, d.decision.BatteryPct, "unknown battery is -1 in the audit")
}

func TestTrackerHalt(t *testing.T) {
	h := newHarness(t)
	one(t, h.status("d1", proto.StateBricked, nil), proto.ActionHalt, policy.ReasonBricked, true)
	one(t, h.status("d1", proto.StateBricked, nil), proto.ActionHalt, policy.ReasonBricked, false)

	// A device silent after a command is halted and escalated.
	h.telemetry("d2", 80, false, -70)
	one(t, h.status("d2", proto.StateVerifyFailed, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	require.Empty(t, h.tr.tick(h.now.Add(2*time.Minute)), "not silent yet")
	h.now = h.now.Add(2*time.Minute + time.Second)
	one(t, h.tr.tick(h.now), proto.ActionHalt, policy.ReasonSilentAfterCommand, true)
	require.Empty(t, h.tr.tick(h.now.Add(time.Hour)), "escalated once")
	one(t, h.status("d2", proto.StateVerifyFailed, nil), proto.ActionNone, policy.ReasonHalted, false)
	require.Empty(t, h.telemetry("d2", 90, true, -60), "hands off after a halt")
	require.Empty(t, h.status("d2", proto.StateUpdated, nil))
	one(t, h.status("d2", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)

	// A rollback that fails ends in a halt.
	h.telemetry("d3", 80, false, -70)
	o := one(t, h.status("d3", proto.StateBootFailed, nil), proto.ActionRollback, policy.ReasonBootFailed, true)
	one(t, h.status("d3", proto.StateBootFailed, failed(o.command.CommandID, proto.ActionRollback)), proto.ActionHalt, policy.ReasonRollbackFailed, true)
}

func TestTrackerSeqAndIDs(t *testing.T) {
	h := newHarness(t)
	h.telemetry("d1", 80, false, -70)
	o := one(t, h.status("d1", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	require.GreaterOrEqual(t, o.command.Seq, uint64(start.UnixMilli()), "seq starts from the clock so a restart keeps counting up")
	require.Greater(t, o.decision.Seq, o.command.Seq)
	b := one(t, h.status("d1", proto.StatePartial, failed(o.command.CommandID, proto.ActionRetry)), proto.ActionNone, policy.ReasonBackoff, false)
	require.Greater(t, b.decision.Seq, o.decision.Seq)

	a, b2 := newCommandID(), newCommandID()
	require.Len(t, a, 32)
	require.NotEqual(t, a, b2)
	require.NoError(t, proto.ValidateID(a))
}

func TestTrackerStuckAfterCommand(t *testing.T) {
	h := newHarness(t)
	h.telemetry("d1", 80, false, -70)
	one(t, h.status("d1", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	require.Empty(t, h.status("d1", proto.StateRebooting, nil))
	// Readings keep coming, so the device is not silent, but it never
	// leaves rebooting: past that state's timeout it is stuck.
	for range 3 {
		h.now = h.now.Add(55 * time.Second)
		require.Empty(t, h.telemetry("d1", 80, false, -70))
		require.Empty(t, h.tr.tick(h.now))
	}
	h.now = h.now.Add(20 * time.Second) // 3m05s in rebooting
	h.telemetry("d1", 80, false, -70)
	one(t, h.tr.tick(h.now), proto.ActionHalt, policy.ReasonStuckAfterCommand, true)
}

func TestTrackerSilentFallback(t *testing.T) {
	h := newHarness(t)
	h.telemetry("d1", 80, false, -70)
	o := one(t, h.status("d1", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	// The device reboots and says updated, but on its old version.
	h.seq++
	m := &proto.StatusEvent{Header: proto.NewHeader("d1", h.now, h.seq), Region: "eu", State: proto.StateUpdated,
		Firmware: "1.0.0", TargetFirmware: "1.1.0", Result: &proto.CommandResult{CommandID: o.command.CommandID, Action: proto.ActionRetry, Outcome: proto.OutcomeOK}}
	require.NoError(t, m.Validate())
	_, outs := h.tr.status("eu", m, h.now)
	b := one(t, outs, proto.ActionNone, policy.ReasonBackoff, false)
	require.Equal(t, 1, b.decision.Attempt, "the failure stays open: attempts continue")
	h.now = h.now.Add(time.Second)
	one(t, h.tr.tick(h.now), proto.ActionRetry, policy.ReasonSilentFallback, true)
	// On the target version it is settled.
	require.Empty(t, h.status("d1", proto.StateUpdated, nil))
	require.Zero(t, h.tr.devices["eu/d1"].retries)
}

func TestTrackerCohortBreaker(t *testing.T) {
	h := newHarness(t)
	h.telemetry("d1", 80, false, -70)
	h.telemetry("d2", 20, false, -70)
	h.telemetry("d3", 80, false, -70)
	one(t, h.status("d1", proto.StatePartial, nil), proto.ActionRetry, policy.ReasonRetryable, true)
	one(t, h.status("d2", proto.StatePartial, nil), proto.ActionDefer, policy.ReasonBatteryLow, true)
	require.Empty(t, h.status("d3", proto.StateUpdated, nil))

	// The breaker trips: the deferred device is decided again (still below
	// the floor: defer); the device with a retry out waits for its result;
	// healthy devices and other cohorts are untouched.
	outs := h.tr.setCohort("1.1.0", "eu", true, h.now)
	one(t, outs, proto.ActionDefer, policy.ReasonBelowRollbackFloor, true)
	require.Empty(t, h.tr.setCohort("1.1.0", "eu", true, h.now), "trips once")
	require.Empty(t, h.tr.setCohort("1.1.0", "us", true, h.now))

	o := h.tr.devices["eu/d1"].open
	one(t, h.status("d1", proto.StatePartial, failed(o, proto.ActionRetry)), proto.ActionRollback, policy.ReasonCohortTripped, true)
	// Cleared: retries again.
	require.Empty(t, h.tr.setCohort("1.1.0", "eu", false, h.now))
	one(t, h.telemetry("d2", 20, true, -70), proto.ActionRetry, policy.ReasonRetryable, true)
}

// cohort is a breaker query's row for 1.1.0 in region, updating from
// 1.0.0, with failed of settled devices failed.
func cohort(region string, settled, failed int64) Counts {
	return Counts{Firmware: "1.1.0", Region: region, FromFirmware: "1.0.0", Devices: settled, Settled: settled, Failed: failed}
}

// baseline is region's row for 1.0.0: the previous rollout's record.
func baseline(region string, settled, failed int64) Counts {
	return Counts{Firmware: "1.0.0", Region: region, FromFirmware: "0.9.0", Devices: settled, Settled: settled, Failed: failed}
}

// TestBreakerLatchesAndAdvisesEveryCohort feeds the v2 breaker query
// results: a cohort that halts stays halted when later devices dilute its
// rate, a second cohort tripping later is added to the same retained
// advisory (which lists both), a cohort shown not worse is promoted on the
// promote topic, and an operator's clear stands the breaker down.
func TestBreakerLatchesAndAdvisesEveryCohort(t *testing.T) {
	h := newHarness(t)
	rule, err := Config{BreakerRule: RuleV2}.withDefaults().breakerRule()
	require.NoError(t, err)
	b := newBreaker(rule, discardLog)
	bases := []Counts{baseline("eu", 2000, 200), baseline("us", 2000, 200), baseline("ap", 8000, 800)}
	rows := func(cs ...Counts) []Counts { return append(append([]Counts(nil), bases...), cs...) }
	advisory := func(pubs []*paho.Publish, topic string) (Advisory, bool) {
		for _, p := range pubs {
			if p.Topic == topic {
				require.True(t, p.Retain)
				if len(p.Payload) == 0 {
					return Advisory{}, true
				}
				var a Advisory
				require.NoError(t, json.Unmarshal(p.Payload, &a))
				return a, true
			}
		}
		return Advisory{}, false
	}
	halt, promote := AdvisoryTopic("1.1.0"), PromoteTopic("1.1.0")

	_, pubs, stored := b.apply(h.tr, rows(cohort("eu", 30, 5), cohort("us", 30, 3)), h.now)
	require.Empty(t, pubs, "too little evidence either way")
	require.Empty(t, stored)

	_, pubs, stored = b.apply(h.tr, rows(cohort("eu", 100, 60), cohort("us", 40, 4)), h.now)
	a, ok := advisory(pubs, halt)
	require.True(t, ok, "eu halts")
	require.Len(t, a.Cohorts, 1)
	c := a.Cohorts[0]
	require.Equal(t, "eu", c.Region)
	require.Equal(t, RuleV2, c.Rule)
	require.Equal(t, "install_failures", c.Signal)
	require.InDelta(t, 0.6, c.Estimate, 1e-9)
	require.Greater(t, c.Bound, c.Limit, "the lower bound crossed the baseline's upper bound plus the tolerance")
	require.EqualValues(t, 100, c.Sample)
	require.Equal(t, "1.0.0", c.BaselineFirmware)
	require.Len(t, stored, 1)
	require.True(t, stored[0].Advised)
	require.True(t, h.tr.tripped[cohortKey("1.1.0", "eu")])

	// Many healthy devices join eu: the halt holds, nothing is republished.
	_, pubs, stored = b.apply(h.tr, rows(cohort("eu", 1000, 150), cohort("us", 40, 4)), h.now)
	require.Empty(t, pubs)
	require.Empty(t, stored)
	require.True(t, h.tr.tripped[cohortKey("1.1.0", "eu")], "latched")

	// us trips later: the advisory is republished with both cohorts.
	h.now = h.now.Add(4 * time.Second)
	_, pubs, _ = b.apply(h.tr, rows(cohort("eu", 1000, 150), cohort("us", 120, 70)), h.now)
	a, ok = advisory(pubs, halt)
	require.True(t, ok, "us joins the advisory")
	require.Len(t, a.Cohorts, 2)
	require.Equal(t, "eu", a.Cohorts[0].Region)
	require.Equal(t, "us", a.Cohorts[1].Region)
	require.InDelta(t, 0.6, a.Cohorts[0].Estimate, 1e-9, "eu keeps the numbers it tripped on")

	// ap, healthy and large, promotes on its own topic.
	_, pubs, _ = b.apply(h.tr, rows(cohort("eu", 1000, 150), cohort("us", 120, 70), cohort("ap", 8000, 790)), h.now)
	a, ok = advisory(pubs, promote)
	require.True(t, ok, "ap promotes")
	require.Len(t, a.Cohorts, 1)
	require.Equal(t, "ap", a.Cohorts[0].Region)
	require.Equal(t, "cohort_promoted", a.Reason)
	_, ok = advisory(pubs, halt)
	require.False(t, ok, "the halt advisory did not change")

	// An operator clears the halt: the breaker stands down for 1.1.0.
	b.operatorClear(h.tr, "1.1.0", h.now)
	require.Empty(t, h.tr.tripped)
	_, pubs, _ = b.apply(h.tr, rows(cohort("eu", 1000, 150), cohort("us", 120, 70), cohort("ap", 8000, 790)), h.now)
	_, ok = advisory(pubs, halt)
	require.False(t, ok)
	require.Empty(t, h.tr.tripped, "overridden by the operator")

	// Gone from the lookback: the promote advisory is cleared.
	_, pubs, _ = b.apply(h.tr, bases, h.now)
	a, ok = advisory(pubs, promote)
	require.True(t, ok)
	require.Empty(t, a.Cohorts, "an empty retained message clears the advisory")
}

// TestBreakerFallsBackWithoutBaseline checks that a v2 cohort with no
// record of the previous firmware in its region is judged by the Wilson
// rule, which the advisory names, rather than never.
func TestBreakerFallsBackWithoutBaseline(t *testing.T) {
	h := newHarness(t)
	rule, err := Config{}.withDefaults().breakerRule()
	require.NoError(t, err)
	b := newBreaker(rule, discardLog)
	_, pubs, stored := b.apply(h.tr, []Counts{cohort("eu", 25, 21)}, h.now)
	require.Len(t, pubs, 1)
	require.Len(t, stored, 1)
	require.Equal(t, RuleWilson, stored[0].Rule)
	require.Contains(t, string(pubs[0].Payload), `"rule":"wilson"`)
}

// TestBreakerFixedRules checks that the Wilson and AWS-style rules stay
// selectable and trip on the absolute threshold, with no baseline.
func TestBreakerFixedRules(t *testing.T) {
	for _, rule := range []string{RuleWilson, RuleAWS} {
		h := newHarness(t)
		r, err := Config{BreakerRule: rule}.withDefaults().breakerRule()
		require.NoError(t, err)
		b := newBreaker(r, discardLog)
		_, pubs, _ := b.apply(h.tr, []Counts{cohort("eu", 25, 10)}, h.now)
		require.Empty(t, pubs, rule)
		_, pubs, stored := b.apply(h.tr, []Counts{cohort("eu", 25, 21)}, h.now)
		require.Len(t, pubs, 1, rule)
		require.Equal(t, rule, stored[0].Rule)
	}
	_, err := Config{BreakerRule: "nope"}.withDefaults().breakerRule()
	require.ErrorIs(t, err, ErrConfig)
}

// BenchmarkDecision10k measures the tracker's decision path, from a
// failure status to the command, with 10,000 devices in memory: the part
// of the decision latency the recoverer itself adds (the rest is MQTT).
// It reports p50 and p99 per decision besides the mean.
func BenchmarkDecision10k(b *testing.B) {
	const devices = 10_000
	tr := newTracker(policy.Config{})
	now := start
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%05d", i)
		m := &proto.Telemetry{Header: proto.NewHeader(ids[i], now, 1), Region: "eu", Firmware: "1.0.0", State: proto.StateIdle, BatteryPct: 80, RSSI: -70}
		tr.telemetry("eu", m, now)
	}
	seq := uint64(1)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := ids[i%devices]
		seq++
		m := &proto.StatusEvent{Header: proto.NewHeader(id, now, seq), Region: "eu", State: proto.StatePartial, Firmware: "1.0.0", TargetFirmware: "1.1.0"}
		ok := &proto.StatusEvent{Header: proto.NewHeader(id, now, seq+1), Region: "eu", State: proto.StateIdle, Firmware: "1.0.0"}
		seq++
		t0 := time.Now()
		_, outs := tr.status("eu", m, now)
		lat = append(lat, time.Since(t0))
		if len(outs) != 1 || outs[0].command == nil {
			b.Fatalf("no command: %+v", outs)
		}
		tr.status("eu", ok, now) // healthy again, so the next failure is a first retry
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
