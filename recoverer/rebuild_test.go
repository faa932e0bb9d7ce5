package recoverer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// TestRebuildDownloadFailures: a restart keeps apart the retries whose
// download failed, which spend their own budget, from the others.
func TestRebuildDownloadFailures(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	at := time.Now().Add(-time.Minute).UTC()
	status := func(seq uint64, s proto.State, result *proto.CommandResult, ts time.Time) warehouse.StatusRow {
		m := &proto.StatusEvent{Header: proto.NewHeader("d1", ts, seq), Region: "eu", State: s, Firmware: "1.0.0", TargetFirmware: "1.1.0", Result: result}
		return warehouse.StatusRowOf(m, ts)
	}
	retry := func(id string, ts time.Time) warehouse.CommandRow {
		c := &proto.Command{Header: proto.NewHeader("d1", ts, uint64(ts.UnixMilli())), CommandID: id, Action: proto.ActionRetry, Reason: "retryable_failure", TargetFirmware: "1.1.0"}
		return warehouse.CommandRowOf(c, "eu")
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableCommands, []warehouse.CommandRow{
		retry("c1", at.Add(time.Second)), retry("c2", at.Add(3*time.Second)), retry("c3", at.Add(5*time.Second)),
	}))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, []warehouse.StatusRow{
		status(1, proto.StateIdle, nil, at.Add(-time.Second)),
		status(2, proto.StateDownloadFailed, nil, at),
		status(3, proto.StateDownloadFailed, &proto.CommandResult{CommandID: "c1", Action: proto.ActionRetry, Outcome: proto.OutcomeFailed}, at.Add(2*time.Second)),
		status(4, proto.StatePartial, &proto.CommandResult{CommandID: "c2", Action: proto.ActionRetry, Outcome: proto.OutcomeFailed}, at.Add(4*time.Second)),
		status(5, proto.StateDownloadFailed, &proto.CommandResult{CommandID: "c3", Action: proto.ActionRetry, Outcome: proto.OutcomeFailed}, at.Add(6*time.Second)),
	}))
	tr := newTracker(policy.Config{})
	n, err := rebuild(ctx, db, tr)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d := tr.devices["eu/d1"]
	require.Equal(t, 3, d.retries)
	require.Equal(t, 2, d.downloadFailures, "c1 and c3 failed in their download, c2 in its install")
	require.Empty(t, d.open, "every retry has its result")
}
