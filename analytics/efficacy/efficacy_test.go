package efficacy_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

var (
	t0     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	guards = efficacy.Guards{RetryMinBattery: 30, RollbackMinBattery: 40, ChargingMinBattery: 20}
)

// fleet stores one run of seven devices, one per case the score tells
// apart, and a later run of the same device IDs that must not leak into
// the first run's score.
func fleet(t *testing.T, db *warehouse.DB) {
	ctx := context.Background()
	run := func(id string, start time.Time) efficacy.Run {
		return efficacy.Run{ID: id, Controller: "sentinel", Started: start, Ended: start.Add(10 * time.Minute)}
	}
	r1, r2 := run("sentinel@1", t0), run("none@2", t0.Add(20*time.Minute))
	truth := func(r efficacy.Run, id, remedy, verdict string, battery float32, bad bool) warehouse.GroundTruthRow {
		return warehouse.GroundTruthRow{RunID: r.ID, Controller: r.Controller, RunStarted: r.Started, RunEnded: r.Ended,
			DeviceID: id, Region: "eu", ToFirmware: "1.1.0", Started: remedy != "none" || verdict == "healthy",
			Remedy: remedy, Verdict: verdict, BatteryAtFailure: battery, BadBuild: bad}
	}
	g := truth(r1, "g", "retry", "bricked_by_command", 50, false)
	g.UnsafeCommands, g.Commands = 1, 1
	a := truth(r1, "a", "retry", "recovered", 80, false)
	a.Commands = 1
	rows := []warehouse.GroundTruthRow{
		a, // recovered, safe
		truth(r1, "b", "retry", "left_broken", 25, false),        // below the retry guard, never charged: not safe
		truth(r1, "c", "charge_first", "left_broken", 10, false), // charged later at 30 %: safe, not recovered
		truth(r1, "d", "rollback", "left_broken", 35, true),      // bad build under the floor: not safe
		truth(r1, "e", "unrecoverable", "left_broken", 90, false),
		truth(r1, "f", "none", "healthy", 90, false),
		g,
		truth(r2, "b", "retry", "recovered", 90, false), // the later run
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableGroundTruth, rows))

	var status []warehouse.StatusRow
	st := func(id, state string, at time.Time, seq uint64) {
		status = append(status, warehouse.StatusRow{DeviceID: id, Region: "eu", State: state, TargetFirmware: "1.1.0", TS: at, ReceivedAt: at, Seq: seq})
	}
	fail := t0.Add(time.Minute)
	for _, id := range []string{"a", "b", "c", "d", "g"} {
		st(id, "partial", fail, 1)
	}
	st("a", "updated", fail.Add(5*time.Second), 2)
	st("b", "partial", t0.Add(21*time.Minute), 1) // the later run
	st("b", "updated", t0.Add(22*time.Minute), 2)
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, status))

	var tel []warehouse.TelemetryRow
	reading := func(id string, at time.Time, battery float32, charging bool) {
		tel = append(tel, warehouse.TelemetryRow{DeviceID: id, Region: "eu", State: "partial", TS: at, ReceivedAt: at, Seq: uint64(at.Unix()), BatteryPct: battery, Charging: charging})
	}
	reading("b", fail.Add(time.Second), 25, false)
	reading("b", t0.Add(-time.Minute), 90, false) // before the failure: no help
	reading("c", fail.Add(30*time.Second), 30, true)
	reading("d", fail.Add(time.Second), 35, false)
	reading("d", t0.Add(25*time.Minute), 95, false) // the later run
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableTelemetry, tel))

	dec := func(id, action, reason string, at time.Time, battery float32) warehouse.DecisionRow {
		return warehouse.DecisionRow{DeviceID: id, Region: "eu", TS: at, Seq: uint64(at.UnixMilli()), Action: action, Reason: reason, BatteryPct: battery}
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableDecisions, []warehouse.DecisionRow{
		dec("a", "retry", "retryable_failure", fail, 80),
		dec("d", "rollback", "cohort_tripped", t0.Add(2*time.Minute), 35), // under the floor
		dec("g", "halt", "bricked", fail.Add(time.Minute), 50),
		dec("b", "halt", "bricked", t0.Add(21*time.Minute), 50), // the later run
	}))
	// The breaker halts healthy us first (its failures must not count),
	// then the bad build's cohort, eu, after d failed. In the later run it
	// halts only us: the bad cohort's halt never happened.
	verdict := func(region string, at time.Time) warehouse.BreakerVerdictRow {
		return warehouse.BreakerVerdictRow{TS: at, Firmware: "1.1.0", Region: region, Rule: "v2", Verdict: "halt", Signal: "install_failures"}
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableBreakerVerdicts, []warehouse.BreakerVerdictRow{
		verdict("us", t0.Add(30*time.Second)), verdict("eu", t0.Add(2*time.Minute)), verdict("us", t0.Add(21*time.Minute)),
	}))
}

func TestCompute(t *testing.T) {
	db := warehousetest.Open(t)
	fleet(t, db)
	ctx := context.Background()
	runs, err := efficacy.Runs(ctx, db)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, "sentinel@1", runs[0].ID, "oldest first")
	require.True(t, runs[0].Started.Equal(t0), "%v", runs[0].Started)

	s, err := efficacy.Compute(ctx, db, runs[0], guards)
	require.NoError(t, err)
	require.Equal(t, efficacy.Score{
		Run:         runs[0],
		Recoverable: 5, Recovered: 1, // a, b, c, d, g; a
		SafelyRecoverable: 3, SafelyRecovered: 1, // a, c, g
		UnsafeRollbacks: 1, UnsafeCommands: 1, Bricked: 1, Escalated: 1, Commands: 2,
		TTRp50: 5, TTRp90: 5, BadBuildFailedAtTrip: 1,
	}, s)

	s, err = efficacy.Compute(ctx, db, runs[1], guards)
	require.NoError(t, err)
	require.EqualValues(t, 1, s.Recovered)
	require.EqualValues(t, -1, s.BadBuildFailedAtTrip, "only a healthy cohort halted in the later run: never")
	require.EqualValues(t, 1, s.Escalated)

	allRuns, all, err := efficacy.ComputeAll(ctx, db, guards)
	require.NoError(t, err)
	require.Equal(t, runs, allRuns)
	require.Len(t, all, 2)
	require.Equal(t, s, all[1], "ComputeAll scores each run as Compute does")

	var out bytes.Buffer
	require.NoError(t, efficacy.WriteTable(&out, []efficacy.Score{s}))
	require.Contains(t, out.String(), "| sentinel | 1 / 1 = 100.0 % |")
}

func TestVerdicts(t *testing.T) {
	db := warehousetest.Open(t)
	fleet(t, db)
	res, err := efficacy.Verdicts(context.Background(), db, "sentinel@1")
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"bricked_by_command", "retry", "1", "1"},
		{"healthy", "none", "1", "0"},
		{"left_broken", "charge_first", "1", "0"},
		{"left_broken", "retry", "1", "0"},
		{"left_broken", "rollback", "1", "0"},
		{"left_broken", "unrecoverable", "1", "0"},
		{"recovered", "retry", "1", "0"},
	}, res.Rows, "the first run's devices only")
	res, err = efficacy.Verdicts(context.Background(), db, "no such run")
	require.NoError(t, err)
	require.Empty(t, res.Rows)
}

func TestRunsEmpty(t *testing.T) {
	db := warehousetest.Open(t)
	_, err := efficacy.Runs(context.Background(), db)
	require.ErrorIs(t, err, efficacy.ErrNoRuns)
}
