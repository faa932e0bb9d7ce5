package recoverer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/broker/brokertest"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

const wait = 15 * time.Second

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// startBroker starts Sentinel's own broker, with its credentials, ACL and
// limits, on a random loopback port. The test devices' gateway login may
// also read the recoverer's audit (see brokertest.Options).
func startBroker(t *testing.T) *brokertest.Broker {
	return brokertest.Start(t, brokertest.Options{GatewayReadsAudit: true})
}

// device plays devices over MQTT: it publishes their telemetry and status
// and records what the recoverer sends back.
type device struct {
	t   *testing.T
	cm  *autopaho.ConnectionManager
	seq map[string]uint64
	msg chan *paho.Publish
}

func connectDevice(t *testing.T, broker *brokertest.Broker) *device {
	t.Helper()
	u, err := url.Parse(broker.URL())
	require.NoError(t, err)
	login := broker.Gateway() // one connection carries many devices
	d := &device{t: t, seq: map[string]uint64{}, msg: make(chan *paho.Publish, 256)}
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ConnectUsername:               login.Username,
		ConnectPassword:               []byte(login.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
				{Topic: "fleet/+/+/cmd", QoS: 1},
				{Topic: proto.FilterRecovery, QoS: 1},
			}})
			if err == nil {
				once.Do(func() { close(subscribed) })
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "test-devices",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				d.msg <- pr.Packet
				return true, nil
			}},
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		<-cm.Done()
	})
	select {
	case <-subscribed:
	case <-time.After(wait):
		t.Fatal("test client did not subscribe")
	}
	// autopaho starts its queue goroutine just after OnConnectionUp: wait
	// for it, so tests that snapshot goroutines (goleak.IgnoreCurrent)
	// after connecting do not find it later and call it a leak.
	require.Eventually(t, func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "managePublishQueue")
	}, wait, time.Millisecond, "autopaho's queue goroutine never started")
	d.cm = cm
	return d
}

func (d *device) publish(topic string, m proto.Message) {
	d.t.Helper()
	b, err := proto.Encode(m)
	require.NoError(d.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err = d.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: b})
	require.NoError(d.t, err)
}

func (d *device) next(id string) uint64 {
	d.seq[id]++
	return d.seq[id]
}

func (d *device) telemetry(region, id string, battery float64, charging bool) {
	d.t.Helper()
	d.publish(proto.TelemetryTopic(region, id), &proto.Telemetry{
		Header: proto.NewHeader(id, time.Now(), d.next(id)), Region: region, Firmware: "1.0.0",
		State: proto.StateIdle, BatteryPct: battery, Charging: charging, RSSI: -70, TemperatureC: 25, UptimeS: 100,
	})
}

// status publishes a status and returns its seq, so a test can repeat it.
func (d *device) status(region, id string, s proto.State, result *proto.CommandResult) uint64 {
	d.t.Helper()
	seq := d.next(id)
	d.statusSeq(region, id, seq, s, result)
	return seq
}

func (d *device) statusSeq(region, id string, seq uint64, s proto.State, result *proto.CommandResult) {
	d.t.Helper()
	d.publish(proto.StatusTopic(region, id), &proto.StatusEvent{
		Header: proto.NewHeader(id, time.Now(), seq), Region: region, State: s,
		Firmware: "1.0.0", TargetFirmware: "1.1.0", Result: result,
	})
}

// expectDecision reads messages until the next decision about id arrives
// and returns it with the command for id received before it, if any. The
// recoverer publishes a command before its decision, and MQTT keeps one
// publisher's order. The tests drive one device at a time, so a message
// about any other device is a failure.
func (d *device) expectDecision(region, id string) (*proto.Decision, *proto.Command) {
	d.t.Helper()
	var cmd *proto.Command
	deadline := time.After(wait)
	for {
		select {
		case p := <-d.msg:
			switch p.Topic {
			case proto.CommandTopic(region, id):
				c, err := proto.DecodeCommand(p.Payload)
				require.NoError(d.t, err)
				require.Nil(d.t, cmd, "a second command before the decision")
				cmd = c
			case proto.RecoveryTopic(region, id):
				dec, err := proto.DecodeDecision(p.Payload)
				require.NoError(d.t, err)
				return dec, cmd
			default:
				d.t.Fatalf("unexpected message while waiting for %s/%s: %s %s", region, id, p.Topic, p.Payload)
			}
		case <-deadline:
			d.t.Fatalf("no decision about %s/%s within %v", region, id, wait)
		}
	}
}

type run struct {
	r      *recoverer.Recoverer
	cancel context.CancelFunc
	done   chan error
}

func startRecoverer(t *testing.T, broker *brokertest.Broker, db *warehouse.DB) *run {
	t.Helper()
	login := broker.Service()
	r, err := recoverer.New(recoverer.Config{
		Broker:   broker.URL(),
		Username: login.Username,
		Password: login.Password,
		ClientID: "recoverer-under-test",
		Policy:   policy.Config{BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		Logger:   discard,
	}, db)
	require.NoError(t, err)
	return launch(t, r)
}

// launch runs r until the test ends, once it has subscribed.
func launch(t *testing.T, r *recoverer.Recoverer) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rn := &run{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rn.done <- r.Run(ctx) }()
	t.Cleanup(func() { rn.stop(t) })
	select {
	case <-r.Ready():
	case err := <-rn.done:
		t.Fatalf("Run returned before subscribing: %v", err)
	case <-time.After(wait):
		t.Fatal("recoverer did not subscribe")
	}
	return rn
}

func (rn *run) stop(t *testing.T) {
	t.Helper()
	rn.cancel()
	select {
	case err, ok := <-rn.done:
		if ok {
			require.NoError(t, err)
			close(rn.done)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRecoverer(t *testing.T) {
	db := warehousetest.Open(t)
	broker := startBroker(t)
	dev := connectDevice(t, broker)
	rn := startRecoverer(t, broker, db)

	t.Run("partial with good battery is retried", func(t *testing.T) {
		dev.telemetry("eu", "good-1", 85, false)
		dev.status("eu", "good-1", proto.StateDownloading, nil)
		seq := dev.status("eu", "good-1", proto.StatePartial, nil)

		dec, cmd := dev.expectDecision("eu", "good-1")
		require.NotNil(t, cmd, "a retry command on fleet/eu/good-1/cmd")
		require.Equal(t, proto.ActionRetry, cmd.Action)
		require.Equal(t, "1.1.0", cmd.TargetFirmware)
		require.Equal(t, proto.ActionRetry, dec.Action)
		require.Equal(t, policy.ReasonRetryable, dec.Reason)
		require.Equal(t, cmd.CommandID, dec.CommandID)
		require.Equal(t, proto.StatePartial, dec.State)
		require.Equal(t, 85.0, dec.BatteryPct)

		// The same status again (a redelivery): no second command. A
		// later message about another device is the barrier: once its
		// decision is in, the repeat was handled.
		dev.statusSeq("eu", "good-1", seq, proto.StatePartial, nil)
		dev.status("eu", "barrier-1", proto.StatePartial, nil)
		dec, cmd = dev.expectDecision("eu", "barrier-1")
		require.NotNil(t, cmd)
		require.Equal(t, policy.ReasonNoTelemetry, dec.Reason, "no reading for the barrier device: never act blind")
		require.Equal(t, uint64(1), rn.r.Stats().Duplicates)
		select {
		case p := <-dev.msg:
			t.Fatalf("unexpected message after the barrier: %s %s", p.Topic, p.Payload)
		default:
		}
	})

	t.Run("low battery at max attempts is deferred, never rolled back", func(t *testing.T) {
		const id = "weak-1"
		dev.telemetry("us", id, 35, false) // enough to retry, under the 40% rollback floor
		dev.status("us", id, proto.StateInstallFailed, nil)
		_, cmd := dev.expectDecision("us", id)
		require.NotNil(t, cmd)
		for attempt := 1; ; attempt++ {
			require.Equal(t, proto.ActionRetry, cmd.Action, "attempt %d", attempt)
			dev.status("us", id, proto.StateInstallFailed, &proto.CommandResult{CommandID: cmd.CommandID, Action: cmd.Action, Outcome: proto.OutcomeFailed})
			var dec *proto.Decision
			dec, cmd = dev.expectDecision("us", id)
			if attempt == 3 {
				require.Equal(t, proto.ActionDefer, dec.Action)
				require.Equal(t, policy.ReasonBelowRollbackFloor, dec.Reason)
				require.Equal(t, 3, dec.Attempt)
				require.NotNil(t, cmd)
				require.Equal(t, proto.ActionDefer, cmd.Action, "a defer command, not a rollback")
				break
			}
			if dec.Reason == policy.ReasonBackoff { // unless the backoff already ended
				require.Nil(t, cmd)
				dec, cmd = dev.expectDecision("us", id)
			}
			require.Equal(t, proto.ActionRetry, dec.Action)
			require.NotNil(t, cmd)
		}

		// Plugged in: the rollback goes out.
		dev.telemetry("us", id, 36, true)
		dec, cmd := dev.expectDecision("us", id)
		require.Equal(t, proto.ActionRollback, dec.Action)
		require.NotNil(t, cmd)
		require.Equal(t, proto.ActionRollback, cmd.Action)
		require.True(t, dec.Charging)
	})

	t.Run("invalid payloads are counted and skipped", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := dev.cm.Publish(ctx, &paho.Publish{Topic: proto.StatusTopic("eu", "junk-1"), QoS: 1, Payload: []byte(`{"v":1,"device_id":"junk-1","state":"melted"}`)})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return rn.r.Stats().Invalid == 1 }, wait, 5*time.Millisecond)
	})

	t.Run("decisions land in the warehouse", func(t *testing.T) {
		want := int64(0)
		for _, n := range rn.r.Stats().Decisions {
			want += int64(n)
		}
		require.Positive(t, want)
		count := func(q string) int64 {
			n, err := db.QueryInt(context.Background(), q)
			require.NoError(t, err)
			return n
		}
		require.Eventually(t, func() bool {
			return count("SELECT count() FROM decisions FINAL") == want
		}, wait, 20*time.Millisecond)
		require.Equal(t, int64(1), count("SELECT count() FROM decisions FINAL WHERE device_id = 'good-1' AND action = 'retry'"))
		require.Equal(t, int64(0), count("SELECT count() FROM decisions FINAL WHERE device_id = 'weak-1' AND action = 'rollback' AND NOT charging AND battery_pct < 40"))
		require.Eventually(t, func() bool {
			return count("SELECT count() FROM commands FINAL WHERE device_id = 'weak-1'") == 5 // 3 retries, a defer, a rollback
		}, wait, 20*time.Millisecond)
	})

	st := rn.r.Stats()
	require.True(t, st.Connected)
	require.Equal(t, uint64(1), st.Invalid)
	require.Zero(t, st.PublishFailures)
	require.Equal(t, uint64(4), st.Commands[proto.ActionRetry])
	require.Equal(t, uint64(1), st.Commands[proto.ActionRollback])
}

func TestShutdown(t *testing.T) {
	db := warehousetest.Open(t)
	broker := startBroker(t)
	dev := connectDevice(t, broker)
	ignore := goleak.IgnoreCurrent()

	rn := startRecoverer(t, broker, db)
	// Decisions made just before the stop are still in the writer's batch
	// (it flushes every 250ms): the stop must flush them.
	const devices = 20
	for i := range devices {
		id := fmt.Sprintf("stop-%02d", i)
		dev.telemetry("ap", id, 90, false)
		dev.status("ap", id, proto.StatePartial, nil)
	}
	require.Eventually(t, func() bool {
		return rn.r.Stats().Decisions[proto.ActionRetry] == devices
	}, wait, 5*time.Millisecond)

	rn.stop(t)
	n, err := db.QueryInt(context.Background(), "SELECT count() FROM decisions WHERE startsWith(device_id, 'stop-')")
	require.NoError(t, err)
	require.Equal(t, int64(devices), n, "every decision stored by the time Run returned")
	require.Equal(t, uint64(devices), rn.r.Stats().DecisionsStored)
	goleak.VerifyNone(t, ignore)

	require.ErrorIs(t, rn.r.Run(context.Background()), recoverer.ErrRunning)
}

func TestNew(t *testing.T) {
	_, err := recoverer.New(recoverer.Config{}, nil)
	require.ErrorIs(t, err, recoverer.ErrConfig)
	for name, cfg := range map[string]recoverer.Config{
		"no host":       {Broker: "localhost"},
		"bad url":       {Broker: "tcp://[::1"},
		"bad threshold": {Policy: policy.Config{RollbackMinBattery: 120}},
	} {
		_, err := recoverer.New(cfg, &warehouse.DB{})
		require.ErrorIs(t, err, recoverer.ErrConfig, name)
		require.True(t, strings.HasPrefix(err.Error(), "recoverer: "), name)
	}
	r, err := recoverer.New(recoverer.Config{}, &warehouse.DB{})
	require.NoError(t, err)
	st := r.Stats()
	require.Zero(t, st.Devices)
	require.NotNil(t, st.Decisions)
}

// Example shows the wiring cmd/sentinel does: open the warehouse, make a
// recoverer and run it until the process is told to stop.
func Example() {
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Millisecond) // signal.NotifyContext in a real main
	defer stop()
	db, err := warehouse.Open(ctx, "chdb:///var/lib/sentinel/warehouse", warehouse.Options{})
	if err != nil {
		fmt.Println("open warehouse:", err != nil)
		return
	}
	defer db.Close()
	r, err := recoverer.New(recoverer.Config{Broker: "tcp://127.0.0.1:1883"}, db)
	if err != nil {
		return
	}
	if err := r.Run(ctx); err != nil {
		fmt.Println("recoverer:", err)
	}
}

func TestRunWithoutBroker(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// A port nothing listens on: Run keeps trying to connect, and must
	// still stop promptly when told to.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	// No warehouse behind the DB: nothing to rebuild from or to query.
	r, err := recoverer.New(recoverer.Config{Broker: "tcp://" + addr, Logger: discard, NoRebuild: true, BreakerInterval: -1}, &warehouse.DB{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.Eventually(t, func() bool { return r.Stats().ConnectFailures >= 2 }, wait, 10*time.Millisecond)
	require.False(t, r.Stats().Connected)
	select {
	case <-r.Ready():
		t.Fatal("ready without a broker")
	default:
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	goleak.VerifyNone(t, ignore)
}

// TestCommandBurst fails many devices at once, as a wave does: every one
// gets exactly one command, and each command reaches the device before the
// decision that explains it, though commands leave many at a time.
func TestCommandBurst(t *testing.T) {
	const n = 300
	db := warehousetest.Open(t)
	broker := startBroker(t)
	dev := connectDevice(t, broker)
	rn := startRecoverer(t, broker, db)
	id := func(i int) string { return fmt.Sprintf("burst-%03d", i) }
	for i := range n {
		dev.telemetry("eu", id(i), 80, false)
	}
	for i := range n {
		dev.status("eu", id(i), proto.StatePartial, nil)
	}
	commands := map[string]int{}
	decided := map[string]bool{}
	deadline := time.After(wait)
	for len(decided) < n {
		select {
		case p := <-dev.msg:
			parts := strings.Split(p.Topic, "/")
			switch {
			case strings.HasSuffix(p.Topic, "/cmd"):
				c, err := proto.DecodeCommand(p.Payload)
				require.NoError(t, err)
				require.Equal(t, proto.ActionRetry, c.Action)
				commands[c.DeviceID]++
			case parts[0] == "sentinel":
				d, err := proto.DecodeDecision(p.Payload)
				require.NoError(t, err)
				require.Equal(t, proto.ActionRetry, d.Action, "device %s", d.DeviceID)
				require.Equal(t, 1, commands[d.DeviceID], "the command of %s arrives before its decision", d.DeviceID)
				decided[d.DeviceID] = true
			}
		case <-deadline:
			t.Fatalf("%d of %d devices decided within %v", len(decided), n, wait)
		}
	}
	for i := range n {
		require.Equal(t, 1, commands[id(i)], "commands to %s", id(i))
	}
	rn.stop(t)
	st := rn.r.Stats()
	require.EqualValues(t, 2*n, st.Published, "every command and decision published once")
	require.Len(t, st.SendLatency, n)
}
