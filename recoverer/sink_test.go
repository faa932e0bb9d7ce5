package recoverer

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// sinkOutput is what the tracker would emit about dev: a decision, with a
// command unless action is none. An empty command ID makes a command that
// cannot be encoded.
func sinkOutput(dev string, action proto.Action, commandID string) output {
	d := &proto.Decision{Header: proto.NewHeader(dev, start, 1), Region: "eu", Action: action, Reason: "test",
		CommandID: commandID, State: proto.StatePartial, BatteryPct: 80, RSSI: -70}
	o := output{region: "eu", decision: d, received: start}
	if action != proto.ActionNone {
		o.command = &proto.Command{Header: proto.NewHeader(dev, start, 1), CommandID: commandID, Action: action, TargetFirmware: "1.1.0"}
	}
	return o
}

// testSink returns a sink over a fresh outbox and writers that are never
// run, so the rows they take stay pending, and at most pending rows fit
// before Add blocks.
func testSink(pending int) (*sink, *statsCounter) {
	st := newStatsCounter()
	cfg := warehouse.WriterConfig{MaxRows: 1, MaxPending: pending}
	return &sink{
		out:       newOutbox(),
		decisions: warehouse.NewWriter[warehouse.DecisionRow](&warehouse.DB{}, warehouse.TableDecisions, cfg),
		commands:  warehouse.NewWriter[warehouse.CommandRow](&warehouse.DB{}, warehouse.TableCommands, cfg),
		stats:     &st,
		log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, &st
}

// lanes empties the outbox as its two lanes would send it, each in its
// order: the priority lane's topics, then the audit lane's.
func lanes(t *testing.T, o *outbox) (urgent, audit []string) {
	t.Helper()
	for {
		m, ok := o.takeUrgent()
		if !ok {
			break
		}
		urgent = append(urgent, m.p.Topic)
		require.Nil(t, o.peekAudit().p, "no audit record leaves while a command is in flight")
		o.urgentDone(m.p.Topic)
	}
	for m := o.peekAudit(); m.p != nil; m = o.peekAudit() {
		audit = append(audit, m.p.Topic)
		o.popAudit()
	}
	require.Zero(t, o.len())
	return urgent, audit
}

// TestSinkApply: what each output publishes and stores.
func TestSinkApply(t *testing.T) {
	for _, tc := range []struct {
		name             string
		outs             []output
		urgent, audit    []string
		commands, decs   int64
		commandsByAction map[proto.Action]uint64
	}{
		{
			name:             "a decision to do nothing is published and stored alone",
			outs:             []output{sinkOutput("d1", proto.ActionNone, "")},
			audit:            []string{"sentinel/recovery/eu/d1"},
			decs:             1,
			commandsByAction: map[proto.Action]uint64{},
		},
		{
			name:     "a command goes ahead of every audit record of the batch",
			outs:     []output{sinkOutput("d1", proto.ActionNone, ""), sinkOutput("d2", proto.ActionRetry, "c-2"), sinkOutput("d3", proto.ActionRollback, "c-3")},
			urgent:   []string{"fleet/eu/d2/cmd", "fleet/eu/d3/cmd"},
			audit:    []string{"sentinel/recovery/eu/d1", "sentinel/recovery/eu/d2", "sentinel/recovery/eu/d3"},
			commands: 2, decs: 3,
			commandsByAction: map[proto.Action]uint64{proto.ActionRetry: 1, proto.ActionRollback: 1},
		},
		{
			name:     "a command that cannot be encoded sends and stores nothing of its decision",
			outs:     []output{sinkOutput("d1", proto.ActionRetry, ""), sinkOutput("d2", proto.ActionRetry, "c-2")},
			urgent:   []string{"fleet/eu/d2/cmd"},
			audit:    []string{"sentinel/recovery/eu/d2"},
			commands: 1, decs: 1,
			commandsByAction: map[proto.Action]uint64{proto.ActionRetry: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := testSink(16)
			s.apply(context.Background(), tc.outs)
			urgent, audit := lanes(t, s.out)
			require.Equal(t, tc.urgent, urgent)
			require.Equal(t, tc.audit, audit)
			require.Equal(t, tc.commands, s.commands.Stats().Pending, "command rows stored")
			require.Equal(t, tc.decs, s.decisions.Stats().Pending, "decision rows stored")
			require.Zero(t, st.storeFailures.Load())
			require.Equal(t, tc.commandsByAction, st.commands)
		})
	}
}

// TestSinkPublishesBeforeItStores: with the warehouse writers full (a
// warehouse that takes nothing), the batch's commands and audit records
// are all in the outbox while the sink still waits to store the first
// row; when the store's context ends, every row not taken is counted.
func TestSinkPublishesBeforeItStores(t *testing.T) {
	s, st := testSink(1)
	ctx := context.Background()
	require.NoError(t, s.commands.Add(ctx, warehouse.CommandRow{}, nil))
	require.NoError(t, s.decisions.Add(ctx, warehouse.DecisionRow{}, nil))

	storeCtx, cutOff := context.WithCancel(ctx)
	defer cutOff()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		s.apply(storeCtx, []output{sinkOutput("d1", proto.ActionRetry, "c-1"), sinkOutput("d2", proto.ActionNone, "")})
	}()
	require.Eventually(t, func() bool { return s.out.len() == 3 }, 10*time.Second, time.Millisecond,
		"the command and both audit records are published before any row is stored")
	select {
	case <-returned:
		t.Fatal("apply returned though the writers took no row")
	default:
	}
	require.Zero(t, st.storeFailures.Load())
	urgent, audit := lanes(t, s.out)
	require.Equal(t, []string{"fleet/eu/d1/cmd"}, urgent)
	require.Equal(t, []string{"sentinel/recovery/eu/d1", "sentinel/recovery/eu/d2"}, audit)

	cutOff()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("apply did not return once its store context ended")
	}
	require.EqualValues(t, 3, st.storeFailures.Load(), "one command row and two decision rows not stored")
	require.EqualValues(t, 1, s.commands.Stats().Pending)
	require.EqualValues(t, 1, s.decisions.Stats().Pending)
}

// TestStoreContext: the store context outlives its parent by the grace,
// and no longer.
func TestStoreContext(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	store, cancel := storeContext(parent, 50*time.Millisecond)
	defer cancel()
	stopped := time.Now()
	stop()
	select {
	case <-store.Done():
		require.GreaterOrEqual(t, time.Since(stopped), 50*time.Millisecond, "the parent's end does not end it at once")
	case <-time.After(10 * time.Second):
		t.Fatal("the store context outlived its grace")
	}

	store, cancel = storeContext(context.Background(), time.Hour)
	cancel()
	require.Error(t, store.Err(), "cancel ends it")
}
