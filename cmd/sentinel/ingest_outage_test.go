package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// TestIngestWarehouseServerOutage takes the warehouse server away under an
// ingestor writing through clickhouse-go over HTTP, then brings it back on
// the same address: meanwhile nothing is acknowledged and the ingestor is
// degraded; afterwards the backlog drains and nothing is lost.
func TestIngestWarehouseServerOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, db, serve := ingestFixture(t, ctx)
	w := startIngestOverHTTP(t, ctx, b, serve, ingestor.Config{ClientID: "outage-ingestor", Connections: 1, ReceiveMaximum: 50,
		Batch: warehouse.WriterConfig{MaxRows: 40, MaxDelay: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
	})
	in, addr, stopServer := w.in, w.addr, w.stopServer

	stopServer() // the outage: connections refused
	const devices, perDevice = 4, 50
	require.NoError(t, publishStream(ctx, b.URL(), devices, perDevice, time.Millisecond))
	require.Eventually(t, func() bool { s := in.Stats(); return s.Degraded && s.Received == 50 }, 30*time.Second, 5*time.Millisecond,
		"the window fills and stays full while the server is down")
	require.Zero(t, in.Stats().Acked)

	ln, err := net.Listen("tcp", addr) // the server comes back where it was
	require.NoError(t, err)
	stopServer = serve(ln)
	defer stopServer()
	require.Eventually(t, func() bool {
		n, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'crash-%'")
		return err == nil && n == devices*perDevice
	}, time.Minute, 20*time.Millisecond)
	require.Eventually(t, func() bool { s := in.Stats(); return s.Acked == devices*perDevice && !s.Degraded }, 30*time.Second, 5*time.Millisecond)
	w.stop()
}

// ingestOverHTTP is an ingestor writing through clickhouse-go over HTTP
// to a warehouse server the test can stop and start again on addr.
type ingestOverHTTP struct {
	in         *ingestor.Ingestor
	addr       string
	stopServer func() // the outage: stops the server now listening
	stop       func() // stops the ingestor and requires a clean return
}

// startIngestOverHTTP serves the warehouse on a free port (serve comes
// from ingestFixture), and starts an ingestor of cfg on b and on that
// server, subscribed when it returns.
func startIngestOverHTTP(t *testing.T, ctx context.Context, b *broker.Broker, serve func(net.Listener) func(), cfg ingestor.Config) ingestOverHTTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := ingestOverHTTP{addr: ln.Addr().String(), stopServer: serve(ln)}
	wdb, err := warehouse.Open(ctx, "http://"+w.addr+"/default", warehouse.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { wdb.Close() })
	cfg.Broker = b.URL()
	w.in, err = ingestor.New(cfg, wdb)
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.in.Run(runCtx) }()
	w.stop = func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	select {
	case <-w.in.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("ingestor never subscribed")
	}
	return w
}
