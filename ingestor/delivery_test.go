package ingestor_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/broker/brokertest"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The embedded broker's listeners and the engine's cgo threads are
		// the test fixtures', closed in t.Cleanup after the leak check of a
		// test body would run.
		goleak.IgnoreTopFunction("github.com/mochi-mqtt/server/v2.(*Server).eventLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// fixture is what every test here needs: a broker, a warehouse and a
// deadline.
func fixture(t *testing.T) (broker *brokertest.Broker, db *warehouse.DB, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return startBroker(t), warehousetest.Open(t), ctx
}

// start builds an ingestor on db and runs it until the returned stop.
func start(t *testing.T, db *warehouse.DB, cfg ingestor.Config) (*ingestor.Ingestor, func()) {
	t.Helper()
	in, err := ingestor.New(cfg, db)
	require.NoError(t, err)
	return in, running(t, in)
}

// running starts in and returns a stop function that cancels it and
// requires a clean return (launch, for a test that only wants it clean).
func running(t *testing.T, in *ingestor.Ingestor) (stop func()) {
	t.Helper()
	stopErr := launch(t, in)
	return func() { require.NoError(t, stopErr()) }
}

// publishReadings publishes n readings of one device, seq from first.
func publishReadings(t *testing.T, ctx context.Context, broker *brokertest.Broker, device string, first, n uint64) {
	t.Helper()
	pub := publisher(t, ctx, broker)
	defer pub.Disconnect(context.Background())
	for seq := first; seq < first+n; seq++ {
		b, err := proto.Encode(reading("eu-west", device, seq))
		require.NoError(t, err)
		publish(t, ctx, pub, proto.TelemetryTopic("eu-west", device), b)
	}
}

func scrape(t *testing.T, in *ingestor.Ingestor) string {
	t.Helper()
	srv := httptest.NewServer(in.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestOutage: the warehouse refuses writes for a while. Nothing is
// acknowledged meanwhile, the ingestor says it is degraded, and on recovery
// the backlog (more than the receive window, so the broker holds part of it)
// drains with nothing lost.
func TestOutage(t *testing.T) {
	broker, db, ctx := fixture(t)
	var fault warehouse.FaultSwitch
	in, err := ingestor.New(onBroker(broker, ingestor.Config{Connections: 2, ReceiveMaximum: 50, Batch: warehouse.WriterConfig{
		MaxRows: 40, MaxDelay: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Fault: &fault,
	}}), db)
	require.NoError(t, err)
	fault.Fail(nil)
	stop := running(t, in)

	const n = 300 // three times the windows: the broker holds the rest
	publishReadings(t, ctx, broker, "dev-outage", 1, n)
	require.Eventually(t, func() bool {
		s := in.Stats()
		return s.Degraded && s.Received == 2*50
	}, 10*time.Second, 5*time.Millisecond, "both windows fill and stay full")
	m := scrape(t, in)
	require.Equal(t, "1", sample(t, in, "sentinel_ingest_degraded"))
	require.Contains(t, m, "sentinel_ingest_inflight_unacked 100")
	require.Regexp(t, `sentinel_ingest_insert_failures_total\{table="telemetry"\} [1-9]`, m)
	require.Zero(t, in.Stats().Acked)
	require.Zero(t, count(t, db, "SELECT count() FROM telemetry"))

	fault.Heal()
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count() FROM telemetry FINAL WHERE device_id = 'dev-outage'") == n
	}, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == n && !s.Degraded }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, int64(n), count(t, db, "SELECT uniqExact(seq) FROM telemetry WHERE device_id = 'dev-outage' AND seq BETWEEN 1 AND 300"))
	require.Equal(t, "0", sample(t, in, "sentinel_ingest_degraded"))
	stop()
}

// TestRestartAcksRedelivered: an ingestor stopped with messages it never
// acknowledged gets them again from its resumed sessions when it
// restarts, and acknowledges every one. The broker resends them right
// behind the CONNACK, so paho hands some over before autopaho's
// OnConnectionUp; when that callback began a connection's generation,
// their acks counted as an earlier connection's and were dropped (seen as
// TestPoisonDays failing on Acked == Received, in a clean .ci/run). Several
// restarts, since each loses that race only sometimes.
func TestRestartAcksRedelivered(t *testing.T) {
	broker, db, ctx := fixture(t)
	var fault warehouse.FaultSwitch
	cfg := onBroker(broker, ingestor.Config{ClientID: "restart-ingestor", Connections: 2,
		Batch: warehouse.WriterConfig{MaxRows: 1000, MaxDelay: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond,
			MaxBackoff: 50 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond, Fault: &fault}})
	pub := publisher(t, ctx, broker)
	defer pub.Disconnect(context.Background())
	const rounds, n = 6, 200
	for round := range rounds {
		fault.Heal()
		in, stop := runIngestor(t, db, cfg)
		// What the last round left unacknowledged commits, and is acked.
		require.Eventually(t, func() bool {
			return count(t, db, "SELECT count() FROM telemetry FINAL") == int64(round*n)
		}, normalLag, 10*time.Millisecond, "round %d: the redelivered readings commit", round)
		require.Eventually(t, func() bool { s := in.Stats(); return s.Acked+s.AcksDropped == s.Received }, normalLag, 10*time.Millisecond,
			"round %d: every message is acked or dropped: %v", round, statsOf(in))
		require.Zero(t, in.Stats().AcksDropped, "round %d: no ack of a redelivered message is dropped", round)
		// The next round's: taken, never committed, never acked.
		fault.Fail(nil)
		received := in.Stats().Received
		msgs := make([]*proto.Telemetry, n)
		for i := range msgs {
			msgs[i] = reading("eu-west", fmt.Sprintf("dev-restart-%d-%03d", round, i), 1)
		}
		burst(t, ctx, pub, msgs)
		require.Eventually(t, func() bool { return in.Stats().Received == received+n }, normalLag, 10*time.Millisecond)
		require.ErrorIs(t, stop(), context.DeadlineExceeded, "the shutdown flush gives up on the burst")
	}
}

// TestShareGroup: two ingestors in one share group split the stream and
// together store every message exactly once.
func TestShareGroup(t *testing.T) {
	broker, db, ctx := fixture(t)
	var ins []*ingestor.Ingestor
	var stops []func()
	for i := range 2 {
		in, stop := start(t, db, onBroker(broker, ingestor.Config{ClientID: fmt.Sprintf("ingest-%d", i),
			Batch: warehouse.WriterConfig{MaxRows: 100, MaxDelay: 10 * time.Millisecond}}))
		ins = append(ins, in)
		stops = append(stops, stop)
	}
	const devices, perDevice = 10, 40
	for d := range devices {
		publishReadings(t, ctx, broker, fmt.Sprintf("dev-share-%d", d), 1, perDevice)
	}
	require.Eventually(t, func() bool {
		return ins[0].Stats().Telemetry+ins[1].Stats().Telemetry == devices*perDevice
	}, 30*time.Second, 10*time.Millisecond)
	for i, in := range ins {
		s := in.Stats()
		require.Positive(t, s.Telemetry, "ingestor %d got a share", i)
		require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == s.Received }, 10*time.Second, 5*time.Millisecond)
	}
	require.Equal(t, int64(devices*perDevice), count(t, db, "SELECT count() FROM telemetry"))
	require.Equal(t, int64(devices*perDevice), count(t, db, "SELECT count() FROM telemetry FINAL"))
	for _, stop := range stops {
		stop()
	}
}

// TestMosquittoPubDeadLetters publishes poison with Debian's mosquitto_pub,
// interleaved with valid readings: each lands in dead_letters with its
// reason, is counted on /metrics, and the valid stream goes on.
func TestMosquittoPubDeadLetters(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	require.NoError(t, err, "install mosquitto-clients (.ci/run does)")
	broker, db, ctx := fixture(t)
	u, err := url.Parse(broker.URL())
	require.NoError(t, err)
	pub := broker.Gateway()
	in, stop := start(t, db, onBroker(broker, ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 100, MaxDelay: 10 * time.Millisecond}}))

	valid := func(seq uint64) string {
		b, err := proto.Encode(reading("eu-west", "dev-mq", seq))
		require.NoError(t, err)
		return string(b)
	}
	ok := valid(1)
	tests := []struct {
		name, topic, payload, reason string
	}{
		{"malformed", "", `{"v":1,"device_id":`, "malformed"},
		{"wrong type", "", strings.Replace(valid(2), `"seq":2`, `"seq":"2"`, 1), "wrong_type"},
		{"battery out of range", "", strings.Replace(valid(3), `"battery_pct":80`, `"battery_pct":180`, 1), "out_of_range"},
		{"rssi out of range", "", strings.Replace(valid(4), `"rssi_dbm":-70`, `"rssi_dbm":7`, 1), "out_of_range"},
		{"oversized", "", `{"pad":"` + strings.Repeat("x", proto.DefaultMaxPayload) + `"}`, "too_large"},
		{"unknown state", "", strings.Replace(valid(5), `"state":"idle"`, `"state":"exploded"`, 1), "unknown_value"},
		{"other device's topic", proto.TelemetryTopic("eu-west", "dev-other"), valid(6), "topic_mismatch"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEqual(t, ok, tc.payload)
			topic := tc.topic
			if topic == "" {
				topic = proto.TelemetryTopic("eu-west", "dev-mq")
			}
			seq := uint64(100 + i)
			for _, msg := range []struct{ topic, payload string }{{topic, tc.payload}, {proto.TelemetryTopic("eu-west", "dev-mq"), valid(seq)}} {
				cmd := exec.CommandContext(ctx, bin, "-h", u.Hostname(), "-p", u.Port(), "-u", pub.Username, "-P", pub.Password, "-V", "mqttv5", "-q", "1", "-t", msg.topic, "-s")
				cmd.Stdin = strings.NewReader(msg.payload)
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s", out)
			}
			require.Eventually(t, func() bool {
				n, err := db.QueryInt(ctx, "SELECT count() FROM dead_letters WHERE reason = {r:String} AND topic = {t:String}",
					warehouse.WithParams(map[string]string{"r": tc.reason, "t": topic}))
				return err == nil && n >= 1 &&
					count(t, db, fmt.Sprintf("SELECT count() FROM telemetry WHERE device_id = 'dev-mq' AND seq = %d", seq)) == 1
			}, 20*time.Second, 10*time.Millisecond)
		})
	}
	want := map[string]int64{}
	for _, tc := range tests {
		want[tc.reason]++
	}
	require.Equal(t, want, in.Stats().DeadLetters)
	m := scrape(t, in)
	for reason, n := range want {
		require.Contains(t, m, fmt.Sprintf(`sentinel_ingest_dead_letters_total{reason=%q} %d`, reason, n))
	}
	require.Equal(t, int64(proto.DefaultMaxPayload+len(`{"pad":""}`)),
		count(t, db, "SELECT payload_bytes FROM dead_letters WHERE reason = 'too_large'"))
	require.Equal(t, int64(warehouse.MaxDeadLetterPayload),
		count(t, db, "SELECT length(payload) FROM dead_letters WHERE reason = 'too_large'"))
	require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == s.Received }, 10*time.Second, 5*time.Millisecond)
	stop()
}

// TestMetrics: every series the issue names is on /metrics.
func TestMetrics(t *testing.T) {
	broker, db, ctx := fixture(t)
	in, stop := start(t, db, onBroker(broker, ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 10, MaxDelay: 10 * time.Millisecond}}))
	publishReadings(t, ctx, broker, "dev-metrics", 1, 25)
	require.Eventually(t, func() bool { return in.Stats().Acked == 25 }, 20*time.Second, 5*time.Millisecond)
	m := scrape(t, in)
	for _, want := range []string{
		`sentinel_ingest_consumed_total{kind="telemetry"} 25`,
		`sentinel_ingest_inserted_rows_total{table="telemetry"} 25`,
		`sentinel_ingest_batch_rows_count{table="telemetry"}`,
		`sentinel_ingest_batch_seconds_bucket{table="telemetry",le=`,
		`sentinel_ingest_commit_lag_seconds_count{table="telemetry"} 25`,
		`sentinel_ingest_acked_total 25`,
		`sentinel_ingest_inflight_unacked 0`,
		`sentinel_ingest_pending_rows 0`,
		`sentinel_ingest_degraded 0`,
	} {
		require.Contains(t, m, want)
	}
	stop()
}
