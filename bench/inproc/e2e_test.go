package inproc_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// auditLog collects what an ops subscriber on sentinel/recovery/# sees.
type auditLog struct {
	mu        sync.Mutex
	decisions []*proto.Decision
	invalid   int
}

func (a *auditLog) add(p *paho.Publish) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, err := proto.DecodeDecision(p.Payload)
	if err != nil || p.Topic != proto.RecoveryTopic(d.Region, d.DeviceID) {
		a.invalid++
		return
	}
	a.decisions = append(a.decisions, d)
}

func (a *auditLog) snapshot() ([]*proto.Decision, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*proto.Decision(nil), a.decisions...), a.invalid
}

func subscribeAudit(t *testing.T, ctx context.Context, brokerURL, user, password string) *auditLog {
	t.Helper()
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	log := &auditLog{}
	subscribed := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: user, ConnectPassword: []byte(password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: proto.FilterRecovery, QoS: 1}}}); err == nil {
					once.Do(func() { close(subscribed) })
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "e2e-ops",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				log.add(pr.Packet)
				return true, nil
			}},
		},
	})
	require.NoError(t, err)
	select {
	case <-subscribed:
	case <-ctx.Done():
		t.Fatal("ops subscriber never subscribed")
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cm.Disconnect(dctx)
		<-cm.Done()
	})
	return log
}

// mosquittoPub sends payload with Debian's mosquitto_pub as user (also its
// client ID), the way a misbehaving device would. CI installs it;
// elsewhere the test skips.
func mosquittoPub(t *testing.T, addr, topic, payloadFile, user, password string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto_pub is required in CI (apt-get install mosquitto-clients)")
		}
		t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")
	}
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	out, err := exec.Command(bin, "-V", "mqttv5", "-h", host, "-p", port, "-q", "1", "-i", user, "-u", user, "-P", password,
		"-t", topic, "-f", payloadFile).CombinedOutput()
	require.NoError(t, err, "mosquitto_pub: %s", out)
}

// discard is a logger for the pipeline's components that writes nothing.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func count(t *testing.T, db *warehouse.DB, q string) int64 {
	t.Helper()
	n, err := db.QueryInt(context.Background(), q)
	require.NoError(t, err)
	return n
}

// TestEndToEnd runs the `sentinel run` wiring with 200 devices on loopback
// and the embedded engine, and checks the loop closes: telemetry from every
// device is stored once, a partial device gets a retry, ops see the
// decisions, and poison sent with mosquitto_pub is dead-lettered without
// stopping the stream.
func TestEndToEnd(t *testing.T) {
	const devices = 200
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := warehousetest.Open(t)

	pc := policy.DefaultConfig()
	pc.BackoffBase = 300 * time.Millisecond
	p, err := inproc.Start(ctx, db, inproc.Config{
		Listen:    "127.0.0.1:0",
		Ingestor:  ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 2000, MaxDelay: 50 * time.Millisecond}},
		Recoverer: recoverer.Config{Policy: pc},
		Fleet: simulator.Config{
			Devices: devices, Seed: 42, FailureShare: 0.25, ConnectRate: 1000,
			TelemetryInterval: 500 * time.Millisecond, RolloutSpread: 2 * time.Second, StepDuration: 150 * time.Millisecond,
		},
		Logger: discard(),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Shutdown()
		if t.Failed() {
			t.Logf("pipeline at the end: %+v; fleet %+v; ingestor %+v; recoverer %+v", p.Status(), p.Fleet().Stats(), p.Ingestor().Stats(), p.Recoverer().Stats())
		}
	})
	audit := subscribeAudit(t, ctx, p.Broker().URL(), inproc.OpsUser, p.Password(inproc.OpsUser))

	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	p.RunFleet(fleetCtx)

	// Wait until every device has telemetry stored.
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT uniqExact(device_id) FROM telemetry FINAL") == devices
	}, time.Minute, 100*time.Millisecond, "every device has telemetry in the warehouse")

	// Poison from mosquitto_pub while the fleet runs.
	dir := t.TempDir()
	poison := map[string]string{
		"malformed":      `{"v":1,"device_id":`,
		"wrong_type":     `{"v":1,"device_id":"dev-x","ts":"2026-11-27T08:00:00.000Z","seq":"one"}`,
		"topic_mismatch": `{"v":1,"device_id":"someone-else","ts":"2026-11-27T08:00:00.000Z","seq":1,"region":"eu-west","firmware":"1.4.2","state":"idle","battery_pct":50,"charging":false,"rssi_dbm":-70,"temperature_c":20,"uptime_s":1}`,
	}
	for reason, payload := range poison {
		f := dir + "/" + reason
		require.NoError(t, os.WriteFile(f, []byte(payload), 0o644))
		mosquittoPub(t, p.Broker().Addr(), proto.TelemetryTopic("eu-west", "dev-x"), f, "dev-x", auth.DevicePassword(p.DeviceKey(), "dev-x"))
	}
	rowsAfterPoison := count(t, db, "SELECT count() FROM telemetry")
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT uniqExact(reason) FROM dead_letters WHERE topic = 'fleet/eu-west/dev-x/telemetry'") == int64(len(poison))
	}, 30*time.Second, 100*time.Millisecond, "each poison payload is a dead letter with its reason")
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count() FROM telemetry") > rowsAfterPoison
	}, 30*time.Second, 100*time.Millisecond, "the stream goes on after poison")

	// At least one partial device got a RETRY, stored and sent.
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count() FROM decisions FINAL WHERE action = 'retry' AND state = 'partial' AND command_id != ''") > 0 &&
			count(t, db, `SELECT count() FROM commands FINAL WHERE action = 'retry' AND command_id IN
				(SELECT command_id FROM decisions FINAL WHERE state = 'partial')`) > 0
	}, time.Minute, 100*time.Millisecond, "a partial device got a retry")
	// ... and ops watching sentinel/recovery/# saw it.
	require.Eventually(t, func() bool {
		ds, _ := audit.snapshot()
		for _, d := range ds {
			if d.Action == proto.ActionRetry && d.State == proto.StatePartial && d.CommandID != "" {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the retry decision reached the audit topic")
	// ... and the device reported the command's result, with its ID.
	require.Eventually(t, func() bool {
		return count(t, db, `SELECT count() FROM status_events FINAL WHERE action = 'retry' AND command_id IN
			(SELECT command_id FROM commands FINAL)`) > 0
	}, time.Minute, 100*time.Millisecond, "a device reported a retry's result with the command ID")

	stopFleet()
	require.NoError(t, p.Drain(30*time.Second))
	require.NoError(t, p.Shutdown())

	// Everything the broker acknowledged to a device is stored exactly once.
	f := p.Fleet().Stats()
	stored := count(t, db, "SELECT (SELECT count() FROM telemetry FINAL) + (SELECT count() FROM status_events FINAL)")
	require.GreaterOrEqual(t, stored, int64(f.Published), "nothing acknowledged to a device is lost")
	require.LessOrEqual(t, stored, int64(f.Published+f.PublishErrors), "nothing is stored that was never sent")
	require.Equal(t, count(t, db, "SELECT count() FROM telemetry FINAL"), count(t, db, "SELECT uniqExact(device_id, seq) FROM telemetry"))

	// The guard: no rollback was ever decided below the floor on battery.
	require.Zero(t, count(t, db, "SELECT count() FROM decisions FINAL WHERE action = 'rollback' AND battery_pct < 40 AND NOT charging"))

	// Every decision ops saw is in the warehouse, and nothing else came over the topic.
	ds, invalid := audit.snapshot()
	require.Zero(t, invalid)
	require.NotEmpty(t, ds)
	stored = count(t, db, "SELECT count() FROM decisions FINAL")
	require.GreaterOrEqual(t, stored, int64(len(ds)))
	var keys []string
	for _, d := range ds {
		keys = append(keys, "('"+d.DeviceID+"',"+itoa(d.Seq)+")")
	}
	require.EqualValues(t, len(ds), count(t, db, "SELECT count() FROM decisions FINAL WHERE (device_id, seq) IN ("+strings.Join(keys, ",")+")"))

	// The ranking covers at least 5 regions.
	res, err := analytics.Run(ctx, db, "regional_ranking", analytics.Filter{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(res.Rows), 5)
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
