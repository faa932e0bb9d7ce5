package recoverer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// store plays the ingestor: it writes what the device published to the
// warehouse, where a restarted recoverer rebuilds its state from.
func store(t *testing.T, db *warehouse.DB, region, id string, seq uint64, s proto.State, result *proto.CommandResult) {
	t.Helper()
	m := &proto.StatusEvent{Header: proto.NewHeader(id, time.Now(), seq), Region: region, State: s,
		Firmware: "1.0.0", TargetFirmware: "1.1.0", Result: result}
	require.NoError(t, warehouse.Insert(context.Background(), db, warehouse.TableStatusEvents,
		[]warehouse.StatusRow{warehouse.StatusRowOf(m, time.Now())}))
}

// TestRestart stops the recoverer mid-recovery, with a retry out, and
// starts a new one on the same warehouse: the redelivered status sends
// nothing, the retry's result is matched to the command the first run
// sent, and the attempt count goes on from there.
func TestRestart(t *testing.T) {
	db := warehousetest.Open(t)
	broker := startBroker(t)
	dev := connectDevice(t, broker)
	ctx := context.Background()
	// Both runs' goroutines end with their stop: none is left behind.
	ignore := goleak.IgnoreCurrent()

	rn := startRecoverer(t, broker, db)
	dev.telemetry("eu", "r1", 80, false)
	seq := dev.status("eu", "r1", proto.StateIdle, nil)
	store(t, db, "eu", "r1", seq, proto.StateIdle, nil)
	failedSeq := dev.status("eu", "r1", proto.StatePartial, nil)
	store(t, db, "eu", "r1", failedSeq, proto.StatePartial, nil)
	d, first := dev.expectDecision("eu", "r1")
	require.Equal(t, proto.ActionRetry, d.Action)
	require.NotNil(t, first)
	require.Equal(t, 0, d.Attempt)
	rn.stop(t) // flushes decisions and commands to the warehouse

	rn = startRecoverer(t, broker, db)
	require.Equal(t, 1, rn.r.Stats().Rebuilt)

	// The broker redelivers the failure the first run acted on: a duplicate.
	dev.statusSeq("eu", "r1", failedSeq, proto.StatePartial, nil)
	require.Eventually(t, func() bool { return rn.r.Stats().Duplicates == 1 }, wait, 10*time.Millisecond)
	// Readings do not reopen the device while the retry is out.
	dev.telemetry("eu", "r1", 80, false)
	require.Eventually(t, func() bool { return rn.r.Stats().Telemetry == 1 }, wait, 10*time.Millisecond)

	// The retry the first run sent fails: the second run sends retry 2,
	// never retry 1 again. Its backoff (20 ms from the first command) has
	// all but surely passed during the restart; if not, the backoff is
	// decided first, with no command, and the retry follows when it ends.
	dev.status("eu", "r1", proto.StatePartial, &proto.CommandResult{CommandID: first.CommandID, Action: proto.ActionRetry, Outcome: proto.OutcomeFailed})
	d, cmd := dev.expectDecision("eu", "r1")
	if d.Reason == policy.ReasonBackoff {
		require.Nil(t, cmd, "a backoff sends nothing")
		d, cmd = dev.expectDecision("eu", "r1")
	}
	require.Equal(t, proto.ActionRetry, d.Action)
	require.Equal(t, policy.ReasonRetryable, d.Reason)
	require.Equal(t, 1, d.Attempt)
	require.NotNil(t, cmd)
	require.NotEqual(t, first.CommandID, cmd.CommandID)
	rn.stop(t)
	goleak.VerifyNone(t, ignore)

	n, err := db.QueryInt(ctx, "SELECT count() FROM commands FINAL WHERE device_id = 'r1'")
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "one command per attempt across the restart")
	n, err = db.QueryInt(ctx, "SELECT uniqExact(attempt) FROM decisions FINAL WHERE device_id = 'r1' AND command_id != ''")
	require.NoError(t, err)
	if n != 2 {
		res, _ := db.Query(ctx, "SELECT seq, ts, action, reason, attempt, command_id FROM decisions WHERE device_id = 'r1' ORDER BY ts")
		t.Logf("decisions: %v", res.Rows)
	}
	require.EqualValues(t, 2, n, "attempts 0 and 1")
}
