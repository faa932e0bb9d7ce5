package ingestor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// normalLag bounds how long a valid reading may take from its publish to
// its commit while another device floods the ingestor with poison. Here
// it is the batch delay (50 ms) plus one insert, well under a second; a
// stalled table is forever. 10 s tells the two apart with room for a
// loaded machine.
const normalLag = 10 * time.Second

// burst publishes the readings all at once, each from its own goroutine,
// so they reach the ingestor together and land in one batch.
func burst(t *testing.T, ctx context.Context, pub *autopaho.ConnectionManager, msgs []*proto.Telemetry) {
	t.Helper()
	var g errgroup.Group
	for _, m := range msgs {
		b, err := proto.Encode(m)
		require.NoError(t, err)
		g.Go(func() error {
			_, err := pub.Publish(ctx, &paho.Publish{Topic: proto.TelemetryTopic(m.Region, m.DeviceID), QoS: 1, Payload: b})
			return err
		})
	}
	require.NoError(t, g.Wait())
}

// poisonBurst is one device's readings over days consecutive days before
// now, from first days back (seq = days back), interleaved with one
// current reading from each of others devices.
func poisonBurst(device string, now time.Time, first, days int, others []string, otherSeq uint64) []*proto.Telemetry {
	var msgs []*proto.Telemetry
	for d := first; d < first+days; d++ {
		m := reading("eu-west", device, uint64(d))
		m.TS = proto.NewTime(now.Add(-time.Duration(d) * 24 * time.Hour))
		msgs = append(msgs, m)
		if i := d - first; i < len(others) {
			msgs = append(msgs, reading("eu-west", others[i], otherSeq))
		}
	}
	return msgs
}

// requireProbesCommit publishes readings of device one at a time and
// requires each to commit within normalLag of its publish.
func requireProbesCommit(t *testing.T, ctx context.Context, pub *autopaho.ConnectionManager, db *warehouse.DB, device string, n int) {
	t.Helper()
	for seq := 1; seq <= n; seq++ {
		b, err := proto.Encode(reading("eu-west", device, uint64(seq)))
		require.NoError(t, err)
		sent := time.Now()
		publish(t, ctx, pub, proto.TelemetryTopic("eu-west", device), b)
		require.Eventually(t, func() bool {
			return count(t, db, fmt.Sprintf("SELECT count() FROM telemetry WHERE device_id = '%s' AND seq = %d", device, seq)) == 1
		}, normalLag, 10*time.Millisecond, "probe %s/%d committed within %s", device, seq, normalLag)
		t.Logf("probe %s/%d committed %s after its publish", device, seq, time.Since(sent).Round(time.Millisecond))
	}
}

// TestPoisonDays: one device sends 150 valid readings over 150 days in one
// burst, more partitions than ClickHouse takes in one insert. Every other
// device's readings keep committing within the normal lag; the 150 land
// in their own day's partition, or in dead_letters with a reason (those
// outside the timestamp window); and a restart that redelivers such a
// burst, never acknowledged, does not bring a stall back. Twice: with the
// default window, which turns most of the burst away at the door, and with
// a window of a year, which lets all of it through to the writer.
func TestPoisonDays(t *testing.T) {
	tests := []struct {
		name       string
		maxTSAge   time.Duration
		wantStored int // of each burst of 150 days, from 1 day back
	}{
		{"default window", 0, 29},
		{"a year's window", 366 * 24 * time.Hour, 150},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			broker, db, ctx := fixture(t)
			var fault warehouse.FaultSwitch
			cfg := onBroker(broker, ingestor.Config{ClientID: "poison-ingestor", Connections: 2, MaxTSAge: tc.maxTSAge,
				Batch: warehouse.WriterConfig{MaxRows: 1000, MaxDelay: 50 * time.Millisecond, MinBackoff: 5 * time.Millisecond,
					MaxBackoff: 50 * time.Millisecond, ShutdownTimeout: 200 * time.Millisecond, Fault: &fault}})
			in, stop := runIngestor(t, db, cfg)
			pub := publisher(t, ctx, broker)
			defer pub.Disconnect(context.Background())
			others := make([]string, 20)
			for i := range others {
				others[i] = fmt.Sprintf("dev-bystander-%02d", i)
			}

			// The burst: 150 days of one device, 20 current readings of others among them.
			now := time.Now().UTC().Truncate(time.Millisecond)
			burst(t, ctx, pub, poisonBurst("dev-poison", now, 1, 150, others, 1))
			require.Eventually(t, func() bool {
				return count(t, db, "SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'dev-bystander-%'") == int64(len(others))
			}, normalLag, 10*time.Millisecond, "the other devices' readings of the burst commit")
			requireProbesCommit(t, ctx, pub, db, "dev-probe-1", 3)
			requireSettled(t, db, now, 1, 150, tc.wantStored)
			require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == s.Received }, normalLag, 10*time.Millisecond,
				"every message the ingestor took is acked: %v", statsOf(in))

			// A restart redelivers a burst never acknowledged: the warehouse
			// fails while the ingestor takes it, and the ingestor stops
			// holding it.
			fault.Fail(nil)
			received := in.Stats().Received
			burst(t, ctx, pub, poisonBurst("dev-poison", now, 151, 150, others, 2))
			require.Eventually(t, func() bool { return in.Stats().Received == received+150+int64(len(others)) }, normalLag, 10*time.Millisecond)
			require.ErrorIs(t, stop(), context.DeadlineExceeded, "the shutdown flush gives up on the burst")
			fault.Heal()
			in2, _ := runIngestor(t, db, cfg)
			require.Eventually(t, func() bool {
				return count(t, db, "SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'dev-bystander-%' AND seq = 2") == int64(len(others))
			}, normalLag, 10*time.Millisecond, "the redelivered readings of the other devices commit")
			requireProbesCommit(t, ctx, pub, db, "dev-probe-2", 3)
			// Days 151-300 back are outside the default window: all dead letters then.
			storedAgain := 150
			if tc.maxTSAge == 0 {
				storedAgain = 0
			}
			requireSettled(t, db, now, 151, 150, storedAgain)
			require.Eventually(t, func() bool { s := in2.Stats(); return s.Acked == s.Received }, normalLag, 10*time.Millisecond,
				"every message the restarted ingestor took is acked: %v", statsOf(in2))
		})
	}
}

// runIngestor starts an ingestor on db and returns it with a stop that
// cancels it and returns Run's error; the test's end stops it too.
func runIngestor(t *testing.T, db *warehouse.DB, cfg ingestor.Config) (*ingestor.Ingestor, func() error) {
	t.Helper()
	in, err := ingestor.New(cfg, db)
	require.NoError(t, err)
	return in, launch(t, in)
}

// launch runs in until its subscriptions are up and returns a stop that
// cancels it and returns Run's error, once; the test's end stops it too and
// requires a clean return unless the test stopped it itself.
func launch(t *testing.T, in *ingestor.Ingestor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	select {
	case <-in.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("ingestor stopped before subscribing: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("ingestor never subscribed")
	}
	var once sync.Once
	var runErr error
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	var stoppedByTest bool
	t.Cleanup(func() {
		if !stoppedByTest {
			require.NoError(t, stopOnce())
		}
	})
	return func() error { stoppedByTest = true; return stopOnce() }
}

// requireSettled requires every reading of dev-poison with seq (days
// back from now) in [first, first+n) to be either stored, with its own ts
// in its own day's partition, or a dead letter with a reason, and want of
// them stored.
func requireSettled(t *testing.T, db *warehouse.DB, now time.Time, first, n, want int) {
	t.Helper()
	where := fmt.Sprintf("device_id = 'dev-poison' AND seq >= %d AND seq < %d", first, first+n)
	dead := fmt.Sprintf("topic = 'fleet/eu-west/dev-poison/telemetry' AND JSONExtractUInt(payload, 'seq') BETWEEN %d AND %d", first, first+n-1)
	settled := func() int64 {
		return count(t, db, "SELECT count() FROM telemetry FINAL WHERE "+where) + count(t, db, "SELECT count() FROM dead_letters WHERE "+dead)
	}
	requireProgress(t, settled, int64(n), normalLag, "each of the %d readings from %d days back is stored or a dead letter", n, first)
	require.EqualValues(t, want, count(t, db, "SELECT count() FROM telemetry FINAL WHERE "+where))
	require.Zero(t, count(t, db, fmt.Sprintf("SELECT count() FROM telemetry WHERE %s AND (toUnixTimestamp64Milli(ts) != %d - seq * 86400000 OR _partition_id != toString(toYYYYMMDD(ts)))",
		where, now.UnixMilli())), "each stored reading has its own ts, in its own day's partition")
	require.Zero(t, count(t, db, "SELECT count() FROM dead_letters WHERE reason = '' AND "+dead))
}

// TestTimestampWindow: a reading or status whose ts is outside the window
// around the receiver's clock (default 30 days back, 1 hour ahead) is a
// dead letter with reason ts_out_of_range; inside it, it is stored.
func TestTimestampWindow(t *testing.T) {
	broker, db, ctx := fixture(t)
	in, stop := start(t, db, onBroker(broker, ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 100, MaxDelay: 10 * time.Millisecond}}))
	pub := publisher(t, ctx, broker)
	defer pub.Disconnect(context.Background())
	now := time.Now()
	tests := []struct {
		name   string
		ts     time.Time
		stored bool
	}{
		{"29 days back", now.AddDate(0, 0, -29), true},
		{"31 days back", now.AddDate(0, 0, -31), false},
		{"30 minutes ahead", now.Add(30 * time.Minute), true},
		{"2 hours ahead", now.Add(2 * time.Hour), false},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), false},
		{"year 1901", time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC), false},
	}
	for i, tc := range tests {
		m := reading("eu-west", "dev-clock", uint64(i+1))
		m.TS = proto.NewTime(placeholderTS)
		publish(t, ctx, pub, proto.TelemetryTopic("eu-west", "dev-clock"), encodeAt(t, m, tc.ts))
		st := &proto.StatusEvent{Header: proto.NewHeader("dev-clock", placeholderTS, uint64(100+i)), Region: "eu-west", State: proto.StateIdle, Firmware: "1.4.2"}
		publish(t, ctx, pub, proto.StatusTopic("eu-west", "dev-clock"), encodeAt(t, st, tc.ts))
	}
	var rejected int64
	for _, tc := range tests {
		if !tc.stored {
			rejected += 2
		}
	}
	require.Eventually(t, func() bool {
		s := in.Stats()
		return s.Acked == s.Received && s.Received == int64(2*len(tests))
	}, 20*time.Second, 10*time.Millisecond)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := int64(0)
			if tc.stored {
				want = 1
			}
			require.Equal(t, want, count(t, db, fmt.Sprintf("SELECT count() FROM telemetry WHERE device_id = 'dev-clock' AND seq = %d", i+1)))
			require.Equal(t, want, count(t, db, fmt.Sprintf("SELECT count() FROM status_events WHERE device_id = 'dev-clock' AND seq = %d", 100+i)))
			require.Equal(t, 2*(1-want), count(t, db, fmt.Sprintf("SELECT count() FROM dead_letters WHERE reason = 'ts_out_of_range' AND JSONExtractUInt(payload, 'seq') IN (%d, %d)", i+1, 100+i)))
		})
	}
	require.Equal(t, rejected, count(t, db, "SELECT count() FROM dead_letters WHERE reason = 'ts_out_of_range'"))
	require.Equal(t, rejected, in.Stats().DeadLetters["ts_out_of_range"])
	require.Contains(t, scrape(t, in), fmt.Sprintf(`sentinel_ingest_dead_letters_total{reason="ts_out_of_range"} %d`, rejected))
	require.Zero(t, count(t, db, "SELECT count() FROM telemetry WHERE device_id = 'dev-clock' AND (ts < now() - INTERVAL 31 DAY OR ts > now() + INTERVAL 2 HOUR)"),
		"nothing outside the window is stored")
	stop()
}

// placeholderTS is the ts encodeAt encodes a message with before putting
// the one it is given in its place.
var placeholderTS = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// encodeAt encodes m, made with placeholderTS, with ts in its place: proto's
// encoder refuses a ts outside the column's range (year 9999), which a
// device on the wire may still send.
func encodeAt(t *testing.T, m proto.Message, ts time.Time) []byte {
	t.Helper()
	b, err := proto.Encode(m)
	require.NoError(t, err)
	const was = `"ts":"2000-01-01T00:00:00.000Z"`
	require.Contains(t, string(b), was)
	return bytes.Replace(b, []byte(was), []byte(`"ts":"`+ts.UTC().Format("2006-01-02T15:04:05.000Z07:00")+`"`), 1)
}

// TestDegradedWhileWarehouseHangs: the warehouse (a real engine behind the
// HTTP server, clickhouse-go's code path) takes the inserts and never
// answers. No insert fails, yet once a commit has been outstanding longer
// than the bound, sentinel_ingest_degraded is 1 and the log says so; when
// the warehouse answers again, everything commits, the gauge is 0 and the
// log says that too.
func TestDegradedWhileWarehouseHangs(t *testing.T) {
	broker, db, ctx := fixture(t)
	var gate warehousetest.Gate
	wdb, err := warehouse.Open(ctx, warehousetest.ServeHTTP(t, db, gate.Wrap), warehouse.Options{})
	require.NoError(t, err)
	defer wdb.Close()
	var logs warehousetest.LogBuffer
	// The default bound: the batch delay and a few seconds.
	in, stop := start(t, wdb, onBroker(broker, ingestor.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Batch: warehouse.WriterConfig{MaxRows: 50, MaxDelay: 10 * time.Millisecond}}))
	require.Equal(t, "0", sample(t, in, "sentinel_ingest_degraded"))
	gate.Shut()
	defer gate.Open() // a failed assertion must not leave the server's handlers held
	hungAt := time.Now()
	publishReadings(t, ctx, broker, "dev-hang", 1, 20)
	require.Eventually(t, func() bool { return gate.Held() > 0 }, 10*time.Second, 5*time.Millisecond, "the insert reaches the warehouse")
	require.Eventually(t, func() bool { return sample(t, in, "sentinel_ingest_degraded") == "1" },
		30*time.Second, 20*time.Millisecond, "degraded while the commit is outstanding")
	require.GreaterOrEqual(t, time.Since(hungAt), 5*time.Second, "not before the bound; log:\n%s", logs.Bytes())
	require.Eventually(t, func() bool {
		return bytes.Contains(logs.Bytes(), []byte("commit is outstanding longer than the bound"))
	},
		10*time.Second, 10*time.Millisecond, "the log says when it starts")
	s := in.Stats()
	require.Zero(t, s.Acked)
	require.True(t, s.Degraded)
	require.False(t, s.DegradedSince.IsZero())
	require.Regexp(t, `^[1-9]`, sample(t, in, "sentinel_ingest_degraded_seconds"))

	gate.Open()
	require.Eventually(t, func() bool {
		return count(t, db, "SELECT count() FROM telemetry FINAL WHERE device_id = 'dev-hang'") == 20
	}, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == 20 && !s.Degraded }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "0", sample(t, in, "sentinel_ingest_degraded"))
	require.Eventually(t, func() bool { return bytes.Contains(logs.Bytes(), []byte("commit no longer outstanding")) },
		10*time.Second, 10*time.Millisecond, "the log says when it ends")
	stop()
}

// sample returns the value of the unlabelled series name on in's /metrics.
// (A plain Contains of "name 1" also matches the HELP line, whose text
// may start with the same digit.)
func sample(t *testing.T, in *ingestor.Ingestor, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(scrape(t, in))
	require.NotNil(t, m, "no sample of %s", name)
	return m[1]
}

// statsOf prints in's Stats as they are when a failed assertion prints
// its message, not as they were when the assertion began.
func statsOf(in *ingestor.Ingestor) fmt.Stringer { return statsString(in.Stats) }

type statsString func() ingestor.Stats

func (f statsString) String() string { return fmt.Sprintf("%+v", f()) }

// requireProgress waits until get returns want, failing only when it stops
// rising for stall: the poison burst's 150 partitions are inserted at most
// 16 at a time, which is a stall when nothing lands for a normal lag and
// only slow when each insert takes seconds (under -race at load 20 the
// burst took over 10 s while every insert succeeded).
func requireProgress(t *testing.T, get func() int64, want int64, stall time.Duration, msgAndArgs ...any) {
	t.Helper()
	last, since := int64(-1), time.Now()
	for {
		got := get()
		if got == want {
			return
		}
		if got != last {
			last, since = got, time.Now()
		}
		if time.Since(since) > stall {
			require.Equal(t, want, got, msgAndArgs...)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, as require.Eventually's
	}
}
