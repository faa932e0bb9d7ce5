package ingestor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker/brokertest"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// startBroker starts Sentinel's own broker, with its credentials, ACL and
// limits, on a free loopback port.
func startBroker(t *testing.T) *brokertest.Broker { return brokertest.Start(t) }

// onBroker is cfg connecting to broker as a Sentinel service.
func onBroker(broker *brokertest.Broker, cfg ingestor.Config) ingestor.Config {
	login := broker.Service()
	cfg.Broker, cfg.Username, cfg.Password = broker.URL(), login.Username, login.Password
	return cfg
}

// publisher connects as a gateway, which may publish any device's
// telemetry and status.
func publisher(t *testing.T, ctx context.Context, broker *brokertest.Broker) *autopaho.ConnectionManager {
	t.Helper()
	u, err := url.Parse(broker.URL())
	require.NoError(t, err)
	login := broker.Gateway()
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: login.Username, ConnectPassword: []byte(login.Password),
		ClientConfig: paho.ClientConfig{ClientID: "test-publisher"},
	})
	require.NoError(t, err)
	require.NoError(t, cm.AwaitConnection(ctx))
	return cm
}

func reading(region, device string, seq uint64) *proto.Telemetry {
	return &proto.Telemetry{
		Header: proto.NewHeader(device, time.Now(), seq), Region: region, Firmware: "1.4.2",
		State: proto.StateIdle, BatteryPct: 80, RSSI: -70, TemperatureC: 30,
	}
}

func publish(t *testing.T, ctx context.Context, cm *autopaho.ConnectionManager, topic string, payload []byte) {
	t.Helper()
	_, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	require.NoError(t, err)
}

func count(t *testing.T, db *warehouse.DB, q string) int64 {
	t.Helper()
	n, err := db.QueryInt(context.Background(), q)
	require.NoError(t, err)
	return n
}

func TestIngest(t *testing.T) {
	broker := startBroker(t)
	db := warehousetest.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	in, err := ingestor.New(onBroker(broker, ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 100, MaxDelay: 20 * time.Millisecond}}), db)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()

	pub := publisher(t, ctx, broker)
	defer pub.Disconnect(context.Background())
	// The shared subscription must exist before publishing, or QoS 1
	// messages have nowhere to go.
	select {
	case <-in.Ready():
	case <-ctx.Done():
		t.Fatal("ingestor never subscribed")
	}

	const devices, perDevice = 20, 25
	for d := 0; d < devices; d++ {
		dev := fmt.Sprintf("dev-%02d", d)
		for seq := uint64(1); seq <= perDevice; seq++ {
			b, err := proto.Encode(reading("eu-west", dev, seq))
			require.NoError(t, err)
			publish(t, ctx, pub, proto.TelemetryTopic("eu-west", dev), b)
		}
		st := &proto.StatusEvent{Header: proto.NewHeader(dev, time.Now(), perDevice+1), Region: "eu-west", State: proto.StatePartial, Firmware: "1.4.2", TargetFirmware: "1.5.0"}
		b, err := proto.Encode(st)
		require.NoError(t, err)
		publish(t, ctx, pub, proto.StatusTopic("eu-west", dev), b)
	}
	// A redelivery: the same (device, seq) again must not count twice.
	b, _ := proto.Encode(reading("eu-west", "dev-00", 1))
	publish(t, ctx, pub, proto.TelemetryTopic("eu-west", "dev-00"), b)

	// Poison: each is stored with its reason and acknowledged, and the stream goes on.
	bad := map[string][]byte{
		"malformed":      []byte(`{"v":1,`),
		"wrong_type":     bytes.Replace(mustJSON(t, func(*proto.Telemetry) {}), []byte(`"seq":999`), []byte(`"seq":"999"`), 1),
		"out_of_range":   mustJSON(t, func(m *proto.Telemetry) { m.BatteryPct = 140 }),
		"topic_mismatch": mustJSON(t, func(m *proto.Telemetry) { m.DeviceID = "dev-01" }),
		"too_large":      make([]byte, proto.DefaultMaxPayload+1),
	}
	for _, payload := range bad {
		publish(t, ctx, pub, proto.TelemetryTopic("eu-west", "dev-00"), payload)
	}
	// The last reading carries the optional device-physics fields, which
	// land in their columns (migration 11).
	physics := reading("eu-west", "after-poison", 1)
	physics.BatteryMV, physics.BatteryCycles, physics.HWModel, physics.Storage, physics.BootCount = 3712, 431, "meter-m2", proto.StorageSingle, 97
	b, _ = proto.Encode(physics)
	publish(t, ctx, pub, proto.TelemetryTopic("eu-west", "after-poison"), b)

	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'dev-%'") == devices*perDevice &&
			count(t, db, "SELECT count() FROM status_events FINAL") == devices &&
			count(t, db, "SELECT count() FROM dead_letters") == int64(len(bad)) &&
			count(t, db, "SELECT count() FROM telemetry WHERE device_id = 'after-poison'") == 1
	}, 30*time.Second, 50*time.Millisecond)

	res, err := db.Query(ctx, "SELECT battery_mv, battery_cycles, hw_model, storage, boot_count FROM telemetry WHERE device_id = 'after-poison'")
	require.NoError(t, err)
	require.Equal(t, [][]string{{"3712", "431", "meter-m2", "single", "97"}}, res.Rows)
	res, err = db.Query(ctx, "SELECT DISTINCT battery_mv, battery_cycles, hw_model, storage, boot_count FROM telemetry WHERE device_id LIKE 'dev-%'")
	require.NoError(t, err)
	require.Equal(t, [][]string{{"0", "0", "", "", "0"}}, res.Rows, "a v1 reading without the fields stores unknown")

	res, err = db.Query(ctx, "SELECT reason, count() FROM dead_letters GROUP BY reason ORDER BY reason")
	require.NoError(t, err)
	var reasons []string
	for _, r := range res.Rows {
		reasons = append(reasons, r[0])
		require.Equal(t, "1", r[1])
	}
	require.ElementsMatch(t, []string{"malformed", "wrong_type", "out_of_range", "topic_mismatch", "too_large"}, reasons)
	st := in.Stats()
	require.EqualValues(t, 5, sum(st.DeadLetters))

	// Every committed message is acknowledged.
	require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == s.Received }, 10*time.Second, 10*time.Millisecond)

	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func mustJSON(t *testing.T, edit func(*proto.Telemetry)) []byte {
	m := reading("eu-west", "dev-00", 999)
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}
