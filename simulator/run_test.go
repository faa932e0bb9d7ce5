package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/sentinel-iot/sentinel/broker/brokertest"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startBroker starts Sentinel's own broker, with its credentials, ACL and
// limits, on a free loopback port; it closes when the test ends.
func startBroker(t *testing.T) *brokertest.Broker { return brokertest.Start(t) }

// onBroker is cfg connecting to srv: each device on its own connection
// logs in as itself, shared connections as a gateway.
func onBroker(srv *brokertest.Broker, cfg Config) Config {
	gw := srv.Gateway()
	cfg.Broker, cfg.Username, cfg.Password = srv.URL(), gw.Username, gw.Password
	cfg.DeviceCredential = func(id string) (Credential, bool) {
		l := srv.Device(id)
		return Credential{Username: l.Username, Password: l.Password}, true
	}
	return cfg
}

// recorder is a test subscriber on fleet/#: it decodes every message with
// proto.Decode and keeps what it saw.
type recorder struct {
	mu sync.Mutex

	telemetry map[string]int                  // device -> readings
	statuses  map[string][]*proto.StatusEvent // device -> events, in arrival order
	seqs      map[string][]uint64             // device -> seq of every message it sent itself, in arrival order
	wills     map[string][]willSeen           // device -> the Last Wills the broker published for it
	payloads  map[string]map[uint64]string    // device -> seq -> payload, to tell a redelivery from a reused seq
	errs      []error                         // what it found wrong: undecodable messages, reused seqs, results it had no room for
	results   chan *proto.StatusEvent         // status events that carry a result
}

// willSeen is a Last Will as it arrived: its seq, and how many of the
// device's own messages had arrived before it.
type willSeen struct {
	seq   uint64
	after int
}

func newRecorder() *recorder {
	return &recorder{
		telemetry: make(map[string]int),
		statuses:  make(map[string][]*proto.StatusEvent),
		seqs:      make(map[string][]uint64),
		wills:     make(map[string][]willSeen),
		payloads:  make(map[string]map[uint64]string),
		results:   make(chan *proto.StatusEvent, 64),
	}
}

func (r *recorder) record(p *paho.Publish) {
	if t, err := proto.ParseTopic(p.Topic); err == nil && t.Kind == proto.KindCommand {
		return // the test's own commands, some invalid on purpose
	}
	top, msg, err := proto.Decode(p.Topic, p.Payload, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", p.Topic, err))
		return
	}
	var seq uint64
	switch m := msg.(type) {
	case *proto.Telemetry:
		seq = m.Seq
	case *proto.StatusEvent:
		seq = m.Seq
	}
	// QoS 1 delivers at least once: a message whose PUBACK the device did
	// not get before its connection dropped comes again on the next one,
	// and the warehouse's (device_id, seq) dedup absorbs it. Count it
	// once, as the warehouse does; a seq reused for another message is an
	// error.
	if prev, ok := r.payloads[top.Device][seq]; ok {
		if prev != string(p.Payload) {
			r.errs = append(r.errs, fmt.Errorf("%s: seq %d reused: %s after %s", p.Topic, seq, p.Payload, prev))
		}
		return
	}
	if r.payloads[top.Device] == nil {
		r.payloads[top.Device] = make(map[uint64]string)
	}
	r.payloads[top.Device][seq] = string(p.Payload)
	switch m := msg.(type) {
	case *proto.Telemetry:
		r.telemetry[top.Device]++
		r.seqs[top.Device] = append(r.seqs[top.Device], m.Seq)
	case *proto.StatusEvent:
		r.statuses[top.Device] = append(r.statuses[top.Device], m)
		if m.State == proto.StateOffline {
			// The Last Will: the broker publishes it when it finds the
			// connection gone, which orders it by seq, not by arrival,
			// among the device's own messages (see checkSeqs).
			r.wills[top.Device] = append(r.wills[top.Device], willSeen{seq: m.Seq, after: len(r.seqs[top.Device])})
			break
		}
		r.seqs[top.Device] = append(r.seqs[top.Device], m.Seq)
		if m.Result != nil {
			// Never block here, nor call the test's t: record runs on
			// paho's goroutine, which may outlive the test.
			select {
			case r.results <- m:
			default:
				r.errs = append(r.errs, fmt.Errorf("%s: result channel full, dropped %+v", p.Topic, m.Result))
			}
		}
	}
}

// checkSeqs checks every device's seq: its own messages arrive with seq
// rising from 1, and each Last Will sorts above every message the device
// sent before it and below every message of the next connection. The
// will's arrival is the broker's: it may come before a message the device
// had in flight when the connection dropped, which QoS 1 sends again on
// the next connection with the seq it had (device.WillSeqGap).
func (r *recorder) checkSeqs(t *testing.T) {
	for id, seqs := range r.seqs {
		require.Equal(t, uint64(1), seqs[0], id)
		for i := 1; i < len(seqs); i++ {
			require.Greater(t, seqs[i], seqs[i-1], "seq of %s must increase", id)
		}
	}
	for id, wills := range r.wills {
		seqs := r.seqs[id]
		for _, w := range wills {
			for _, s := range seqs[:w.after] {
				require.Less(t, s, w.seq, "the will of %s sorts after what came before it", id)
			}
			var last uint64 // the device's last message before the will
			if w.after > 0 {
				last = seqs[w.after-1]
			}
			var next *proto.StatusEvent // the report of the next connection
			for _, ev := range r.statuses[id] {
				if ev.Detail == "connected" && ev.Seq > last {
					next = ev
					break
				}
			}
			if next != nil {
				require.Greater(t, next.Seq, w.seq, "the will of %s sorts before the next connection's report", id)
			}
		}
	}
}

// lastState returns the state of the device's latest status event.
func (r *recorder) lastState(device string) proto.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.statuses[device]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1].State
}

func (r *recorder) lastStatus(device string) *proto.StatusEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.statuses[device]
	if len(s) == 0 {
		return &proto.StatusEvent{}
	}
	return s[len(s)-1]
}

func (r *recorder) statusCount(device string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.statuses[device])
}

// problems returns what the recorder found wrong so far.
func (r *recorder) problems() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *recorder) telemetryCount(device string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.telemetry[device]
}

// connectClient connects an MQTT v5 client to srv as a Sentinel service
// (it reads the fleet and sends commands), subscribed to filter when it is
// not empty, passing received messages to onMessage.
func connectClient(t *testing.T, ctx context.Context, srv *brokertest.Broker, id, filter string, onMessage func(*paho.Publish)) *autopaho.ConnectionManager {
	t.Helper()
	u, err := url.Parse(srv.URL())
	require.NoError(t, err)
	login := srv.Service()
	ready := make(chan error, 1)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectUsername:               login.Username,
		ConnectPassword:               []byte(login.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if filter == "" {
				ready <- nil
				return
			}
			go func() {
				_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
				ready <- err
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					if onMessage != nil {
						onMessage(pr.Packet)
					}
					return true, nil
				},
			},
		},
	})
	require.NoError(t, err)
	select {
	case err := <-ready:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("test client did not connect")
	}
	return cm
}

func sendCommand(t *testing.T, ctx context.Context, cm *autopaho.ConnectionManager, d DeviceInfo, seq uint64, id string, action proto.Action) {
	t.Helper()
	payload, err := proto.Encode(&proto.Command{
		Header:    proto.NewHeader(d.ID, time.Now(), seq),
		CommandID: id,
		Action:    action,
		Reason:    "test",
	})
	require.NoError(t, err)
	_, err = cm.Publish(ctx, &paho.Publish{Topic: proto.CommandTopic(d.Region, d.ID), QoS: 1, Payload: payload})
	require.NoError(t, err)
}

// awaitResult waits for the status event reporting command id.
func awaitResult(t *testing.T, r *recorder, id string) *proto.StatusEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.results:
			if ev.Result.CommandID == id {
				return ev
			}
		case <-deadline:
			t.Fatalf("no result for command %s", id)
		}
	}
}

// testLogger logs to the test's output with -v, and discards otherwise.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestRunAgainstBroker(t *testing.T) {
	srv := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	rec := newRecorder()
	sub := connectClient(t, ctx, srv, "test-subscriber", "fleet/#", rec.record)

	fleet, err := New(onBroker(srv, Config{
		Devices:           50,
		Seed:              42,
		FailureShare:      0.3,
		TelemetryInterval: 200 * time.Millisecond,
		RolloutSpread:     200 * time.Millisecond,
		StepDuration:      50 * time.Millisecond,
		ConnectRate:       1000,
		Logger:            testLogger(t),
	}))
	require.NoError(t, err)
	devices := fleet.Devices()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- fleet.Run(runCtx) }()

	// Every device connects, publishes telemetry, and its rollout ends as
	// the fleet's truth says.
	require.Eventually(t, func() bool {
		for _, d := range devices {
			if rec.telemetryCount(d.ID) < 2 || rec.lastState(d.ID) != d.RolloutEnd {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, len(devices), fleet.Stats().Connected)

	// Pick a device the rollout left partial or install_failed.
	var target DeviceInfo
	for _, d := range devices {
		if d.RolloutEnd == proto.StatePartial || d.RolloutEnd == proto.StateInstallFailed {
			target = d
			break
		}
	}
	require.NotEmpty(t, target.ID, "seed 42 with share 0.3 has failing devices")

	sendCommand(t, ctx, sub, target, 1, "cmd-retry-1", proto.ActionRetry)
	ev := awaitResult(t, rec, "cmd-retry-1")
	require.Equal(t, proto.ActionRetry, ev.Result.Action)
	switch ev.Result.Outcome {
	case proto.OutcomeOK:
		require.Equal(t, proto.StateUpdated, ev.State)
		require.Equal(t, target.ToFirmware, ev.Firmware)
	case proto.OutcomeFailed:
		require.Contains(t, []proto.State{proto.StatePartial, proto.StateInstallFailed}, ev.State)
		require.Equal(t, target.FromFirmware, ev.Firmware)
	default:
		t.Fatalf("unexpected retry outcome %q", ev.Result.Outcome)
	}
	stateAfterRetry := ev.State

	sendCommand(t, ctx, sub, target, 2, "cmd-retry-1", proto.ActionRetry)
	dup := awaitResult(t, rec, "cmd-retry-1")
	require.Equal(t, proto.OutcomeDuplicate, dup.Result.Outcome)
	require.Equal(t, stateAfterRetry, dup.State, "a duplicate changes nothing")

	// A device the broker drops reconnects and reports its state again,
	// its seq carrying on (checked below).
	before := rec.statusCount(target.ID)
	require.NoError(t, srv.Disconnect(target.ID))
	require.Eventually(t, func() bool {
		ev := rec.lastStatus(target.ID)
		return rec.statusCount(target.ID) > before && ev.Detail == "connected" && ev.State == stateAfterRetry
	}, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return fleet.Stats().Connected == len(devices) }, 30*time.Second, 10*time.Millisecond)

	// A rollback restores the previous firmware, or bricks a device on a
	// nearly empty battery.
	sendCommand(t, ctx, sub, target, 3, "cmd-rollback-1", proto.ActionRollback)
	rb := awaitResult(t, rec, "cmd-rollback-1")
	if target.BatteryPct < 15 && !target.Charging {
		require.Equal(t, proto.OutcomeFailed, rb.Result.Outcome)
		require.Equal(t, proto.StateBricked, rb.State)
	} else {
		require.Equal(t, proto.OutcomeOK, rb.Result.Outcome)
		require.Equal(t, proto.StateRolledBack, rb.State)
		require.Equal(t, target.FromFirmware, rb.Firmware)
	}

	// A payload that is not a command is counted and ignored.
	_, err = sub.Publish(ctx, &paho.Publish{Topic: proto.CommandTopic(target.Region, target.ID), QoS: 1, Payload: []byte(`{"v":1}`)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return fleet.Stats().InvalidCommands == 1 }, 5*time.Second, 10*time.Millisecond)

	st := fleet.Stats()
	require.EqualValues(t, 3, st.CommandsReceived)
	require.Positive(t, st.Published)
	total := 0
	for _, n := range st.ByState {
		total += n
	}
	require.Equal(t, len(devices), total)

	stop()
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancel")
	}
	require.Zero(t, fleet.Stats().Connected)
	require.ErrorIs(t, fleet.Run(ctx), ErrRunning)

	// Disconnect the recorder before locking it for the checks: a message
	// still on its way would block paho's goroutine in record on rec.mu,
	// and Disconnect waits for that goroutine (the test hung there).
	require.NoError(t, sub.Disconnect(context.Background()))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Empty(t, rec.errs)
	rec.checkSeqs(t)
	// The rollout walks every phase: a device that ends updated reported
	// each state on the way, in order.
	for _, d := range devices {
		if d.RolloutEnd != proto.StateUpdated || d.ID == target.ID {
			continue
		}
		var got []proto.State
		for _, ev := range rec.statuses[d.ID] {
			got = append(got, ev.State)
		}
		require.Equal(t, []proto.State{"idle", "downloading", "verifying", "installing", "rebooting", "updated"}, got, d.ID)
		break
	}
}

func TestRunFailsFastWithoutBroker(t *testing.T) {
	// Reserve a port and close it, so nothing listens there.
	broker := startBrokerAddrThenClose(t)
	fleet, err := New(Config{Broker: broker, Devices: 5})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = fleet.Run(ctx)
	require.ErrorIs(t, err, ErrConnect)
}

func startBrokerAddrThenClose(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "tcp://" + addr
}

func TestRunStopsPromptlyAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 connections")
	}
	srv := startBroker(t)
	fleet, err := New(onBroker(srv, Config{
		Devices:           1000,
		TelemetryInterval: 500 * time.Millisecond,
		RolloutSpread:     time.Second,
		StepDuration:      100 * time.Millisecond,
		ConnectRate:       2000,
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- fleet.Run(ctx) }()

	require.Eventually(t, func() bool { return fleet.Stats().Connected == 1000 }, 30*time.Second, 50*time.Millisecond)
	cancel()
	start := time.Now()
	select {
	case err := <-runErr:
		require.NoError(t, err)
		t.Logf("Run returned %v after cancel", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancel")
	}
}
