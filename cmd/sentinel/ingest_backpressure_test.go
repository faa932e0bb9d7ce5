package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/rawclient"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// TestOutageLongerThanTheSessionHolds is issue 19's acceptance test,
// scaled down: the warehouse stops for longer than the ingestor's session
// can hold (a broker in-flight window of 32 and a backlog budget of about
// 70 readings), while devices keep publishing. Every message the broker
// acknowledged must be stored exactly once after the warehouse returns;
// past the budget the publisher must see 0x97 (and keeps those readings,
// to send again, as firmware does); the broker's counters must say how
// many it refused. Upstream mochi acknowledged the messages past the
// window and dropped them ("client store quota reached").
func TestOutageLongerThanTheSessionHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, db, serve := ingestFixture(t, ctx, func(c *broker.Config) {
		c.Limits.MaxInflight = 32
		c.Store = broker.StoreConfig{Dir: t.TempDir(), BacklogBytes: 40 << 10}
	})
	w := startIngestOverHTTP(t, ctx, b, serve, ingestor.Config{ClientID: "bp-ingestor", Connections: 1, ReceiveMaximum: 16,
		Batch: warehouse.WriterConfig{MaxRows: 8, MaxDelay: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
	})
	in, addr, stopServer := w.in, w.addr, w.stopServer

	stopServer() // the outage
	pub, err := rawclient.Dial(ctx, b.Addr(), rawclient.Options{ClientID: "bp-publisher", CleanStart: true})
	require.NoError(t, err)
	defer pub.Close()
	const devices, perDevice = 4, 60
	acked := map[string]bool{} // the publisher's own record of PUBACK 0x00
	var kept []reading         // refused with 0x97, kept in order to send again
	for seq := 1; seq <= perDevice; seq++ {
		for d := range devices {
			r := reading{device: fmt.Sprintf("bp-%02d", d), seq: seq}
			switch err := r.publish(ctx, pub); {
			case err == nil:
				acked[r.key()] = true
			case isQuotaExceeded(err):
				kept = append(kept, r)
			default:
				t.Fatalf("publish %s: %v", r.key(), err)
			}
		}
	}
	refused := b.Rejected()[broker.ReasonQuotaExceeded]
	t.Logf("during the outage: %d acknowledged, %d refused with 0x97 (the broker counted %d)", len(acked), len(kept), refused)
	require.Greater(t, len(acked), 32, "past the in-flight window, messages queue in the backlog")
	require.NotEmpty(t, kept, "past the backlog's budget the publisher is refused")
	require.Equal(t, uint64(len(kept)), refused, "the broker counts every refusal")
	require.Zero(t, in.Stats().Acked, "nothing commits while the warehouse is down")

	ln, err := net.Listen("tcp", addr) // the warehouse comes back where it was
	require.NoError(t, err)
	stopServer = serve(ln)
	defer stopServer()
	waitStored(t, ctx, db, len(acked))
	requireStoredOnce(t, ctx, db, acked)

	// The publisher sends what it kept, in order; a refusal now would mean
	// the ingestor is behind again, so it waits for an acknowledgement to
	// free room before it tries again.
	for _, r := range kept {
		for {
			before := in.Stats().Acked
			err := r.publish(ctx, pub)
			if err == nil {
				acked[r.key()] = true
				break
			}
			require.True(t, isQuotaExceeded(err), "resend %s: %v", r.key(), err)
			require.Eventually(t, func() bool { return in.Stats().Acked > before }, 30*time.Second, 5*time.Millisecond)
		}
	}
	require.Len(t, acked, devices*perDevice)
	waitStored(t, ctx, db, devices*perDevice)
	requireStoredOnce(t, ctx, db, acked)
	require.Zero(t, b.Dropped()[broker.DropInflight]+b.Dropped()[broker.DropSessionEnded]+b.Dropped()[broker.DropBacklogWrite])

	w.stop()
}

// reading is one telemetry message of the outage test's publisher.
type reading struct {
	device string
	seq    int
}

func (r reading) key() string { return fmt.Sprintf("%s/%d", r.device, r.seq) }

// publish sends r at QoS 1 and waits for its PUBACK.
func (r reading) publish(ctx context.Context, c *rawclient.Client) error {
	m := &proto.Telemetry{Header: proto.NewHeader(r.device, time.Now(), uint64(r.seq)), Region: "eu-west", Firmware: "1.4.2",
		State: proto.StateIdle, BatteryPct: 50, RSSI: -70, TemperatureC: 20}
	p, err := proto.Encode(m)
	if err != nil {
		return err
	}
	return c.PublishWait(ctx, proto.TelemetryTopic("eu-west", r.device), p)
}

// isQuotaExceeded reports whether err is a PUBACK with reason 0x97.
func isQuotaExceeded(err error) bool {
	return errors.Is(err, rawclient.ErrRefused) && strings.Contains(err.Error(), "0x97")
}

// waitStored waits until the telemetry table holds want readings of the test
// devices, read with FINAL.
func waitStored(t *testing.T, ctx context.Context, db *warehouse.DB, want int) {
	t.Helper()
	var got atomic.Int64
	if !assert.Eventually(t, func() bool {
		n, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'bp-%'")
		got.Store(n)
		return err == nil && n >= int64(want)
	}, 30*time.Second, 20*time.Millisecond) {
		t.Fatalf("the warehouse holds %d of the %d acknowledged readings", got.Load(), want)
	}
}

// requireStoredOnce checks that the stored readings are exactly acked:
// each once (count() FINAL equals uniqExact(device_id, seq)), none missing
// and none the broker did not acknowledge.
func requireStoredOnce(t *testing.T, ctx context.Context, db *warehouse.DB, acked map[string]bool) {
	t.Helper()
	final, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'bp-%'")
	require.NoError(t, err)
	uniq, err := db.QueryInt(ctx, "SELECT uniqExact(device_id, seq) FROM telemetry WHERE device_id LIKE 'bp-%'")
	require.NoError(t, err)
	require.Equal(t, int64(len(acked)), final, "count() FINAL")
	require.Equal(t, int64(len(acked)), uniq, "uniqExact(device_id, seq)")
	res, err := db.Query(ctx, "SELECT device_id, seq FROM telemetry FINAL WHERE device_id LIKE 'bp-%'")
	require.NoError(t, err)
	for _, row := range res.Rows {
		require.True(t, acked[row[0]+"/"+row[1]], "stored %s/%s, which the broker never acknowledged", row[0], row[1])
	}
}
