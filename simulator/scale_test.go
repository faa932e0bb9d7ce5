package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/simulator/device"
	"github.com/stretchr/testify/require"
)

// counter is a light subscriber for large fleets: readings per device and
// the status events of a few devices it watches.
type counter struct {
	mu        sync.Mutex
	telemetry map[string]int
	watch     map[string][]*proto.StatusEvent
	bad       int
}

func newCounter() *counter {
	return &counter{telemetry: make(map[string]int), watch: make(map[string][]*proto.StatusEvent)}
}

func (c *counter) record(p *paho.Publish) {
	top, msg, err := proto.Decode(p.Topic, p.Payload, 0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if t, perr := proto.ParseTopic(p.Topic); perr != nil || t.Kind != proto.KindCommand {
			c.bad++
		}
		return
	}
	switch m := msg.(type) {
	case *proto.Telemetry:
		c.telemetry[top.Device]++
	case *proto.StatusEvent:
		if evs, ok := c.watch[top.Device]; ok {
			c.watch[top.Device] = append(evs, m)
		}
	}
}

func (c *counter) reporting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.telemetry)
}

func (c *counter) statuses(id string) []*proto.StatusEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*proto.StatusEvent(nil), c.watch[id]...)
}

// TestFleetOf2000 runs 2,000 devices, each on its own connection, against
// the embedded broker: all connect, all publish, and the Last Will of a
// device whose connection dies is published, with a seq above everything
// it sent before and below everything it sends after reconnecting.
func TestFleetOf2000(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const n = 2000
	srv := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	fleet, err := New(onBroker(srv, Config{
		Devices:           n,
		Seed:              7,
		ConnectRate:       2000,
		TelemetryInterval: 10 * time.Second, // joining already reports a reading
		RolloutSpread:     time.Second,
		StepDuration:      200 * time.Millisecond,
		Logger:            testLogger(t),
	}))
	require.NoError(t, err)
	devices := fleet.Devices()
	victim := devices[n/2]

	// One subscriber counts readings; another watches only the victim's
	// status, so a busy broker never drops the will on its way to the test.
	rec := newCounter()
	sub := connectClient(t, ctx, srv, "test-counter", proto.FilterTelemetry, rec.record)
	rec.watch[victim.ID] = nil
	watcher := connectClient(t, ctx, srv, "test-watcher", proto.StatusTopic(victim.Region, victim.ID), rec.record)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	began := time.Now()
	go func() { runErr <- fleet.Run(runCtx) }()

	require.Eventually(t, func() bool { return fleet.Stats().Connected == n }, 45*time.Second, 50*time.Millisecond, "all connect")
	t.Logf("%d devices online after %v", n, time.Since(began).Round(time.Millisecond))
	require.Eventually(t, func() bool { return rec.reporting() == n }, 45*time.Second, 50*time.Millisecond, "all publish")
	t.Logf("%d devices published after %v", n, time.Since(began).Round(time.Millisecond))

	// Kill the victim's TCP connection from the broker's side: no
	// DISCONNECT, so the broker publishes its will.
	before := len(rec.statuses(victim.ID))
	require.Positive(t, before)
	require.NoError(t, srv.DropConnection(victim.ID))

	var will *proto.StatusEvent
	require.Eventually(t, func() bool {
		for _, ev := range rec.statuses(victim.ID)[before:] {
			if ev.State == proto.StateOffline {
				will = ev
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "the Last Will fires")
	// Every connection attempt arms a will WillSeqGap above the last (an
	// attempt that timed out under load may still have reached the broker),
	// so the will's seq is a multiple of the gap, not always the first.
	require.Zero(t, will.Seq%device.WillSeqGap, "a will's seq is a multiple of device.WillSeqGap, got %d", will.Seq)
	require.GreaterOrEqual(t, will.Seq, uint64(device.WillSeqGap), "a will's seq is above the first connection's counter")
	require.Eventually(t, func() bool {
		evs := rec.statuses(victim.ID)
		last := evs[len(evs)-1]
		return last.Detail == "connected" && last.Seq > will.Seq
	}, 30*time.Second, 20*time.Millisecond, "the device reconnects and reports, its seq past the will's")
	for _, ev := range rec.statuses(victim.ID)[:before] {
		require.Less(t, ev.Seq, will.Seq, "everything before the will sorts before it")
	}

	stop()
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel")
	}
	require.Zero(t, fleet.Stats().Connected)
	rec.mu.Lock()
	bad := rec.bad
	rec.mu.Unlock()
	require.Zero(t, bad, "every message decodes strictly")

	// The ground truth covers every device, as JSON lines.
	var buf bytes.Buffer
	require.NoError(t, fleet.WriteGroundTruth(&buf))
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	require.Len(t, lines, n)
	var first Truth
	require.NoError(t, json.Unmarshal(lines[0], &first))
	require.Equal(t, devices[0].ID, first.DeviceID)
	require.Equal(t, 1, first.V)
	require.NoError(t, sub.Disconnect(context.Background()))
	require.NoError(t, watcher.Disconnect(context.Background()))
}

// TestSharedConnections multiplexes 300 devices over 3 connections: all
// publish, and a command reaches its device through the shared connection.
func TestSharedConnections(t *testing.T) {
	srv := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	fleet, err := New(onBroker(srv, Config{Devices: 300, Conns: 3, Seed: 3, FailureShare: 0.5, ConnectRate: 3000,
		TelemetryInterval: 300 * time.Millisecond, RolloutSpread: 200 * time.Millisecond, StepDuration: 30 * time.Millisecond,
		Waves: []float64{100}, Logger: testLogger(t),
	}))
	require.NoError(t, err)
	rec := newRecorder()
	sub := connectClient(t, ctx, srv, "test-subscriber", "fleet/#", rec.record)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- fleet.Run(runCtx) }()

	devices := fleet.Devices()
	require.Eventually(t, func() bool {
		for _, d := range devices {
			if rec.telemetryCount(d.ID) == 0 || rec.lastState(d.ID) != d.RolloutEnd {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)
	st := fleet.Stats()
	require.Equal(t, 3, st.Conns)
	require.Equal(t, 3, st.ConnsUp)
	require.Equal(t, 300, st.Connected)

	var target DeviceInfo
	for _, d := range devices {
		if d.RolloutEnd == proto.StatePartial {
			target = d
			break
		}
	}
	require.NotEmpty(t, target.ID)
	sendCommand(t, ctx, sub, target, 1, "mux-rollback", proto.ActionRollback)
	ev := awaitResult(t, rec, "mux-rollback")
	require.Equal(t, target.ID, ev.DeviceID)

	stop()
	require.NoError(t, <-runErr)
	truth := fleet.GroundTruth()
	tr := truth[slicesIndex(devices, target.ID)]
	require.Equal(t, 1, tr.Commands)
	require.Equal(t, proto.StatePartial, tr.Fate)
	require.NotEqual(t, device.VerdictNotStarted, tr.Verdict)
	require.Empty(t, rec.problems()) // never assert holding rec.mu: paho's goroutine would wait on it for good
	require.NoError(t, sub.Disconnect(context.Background()))
}

func slicesIndex(ds []DeviceInfo, id string) int {
	for i, d := range ds {
		if d.ID == id {
			return i
		}
	}
	return -1
}
