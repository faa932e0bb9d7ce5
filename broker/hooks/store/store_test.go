package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/broker/hooks/store"
	"github.com/sentinel-iot/sentinel/broker/rawclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a mochi server with the store hook on a loopback port.
func serve(t *testing.T, opts *store.Options) (*mqtt.Server, *store.Hook, string) {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, s.AddHook(new(auth.AllowHook), nil))
	h := new(store.Hook)
	require.NoError(t, s.AddHook(h, opts))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, s.AddListener(listeners.NewNet("tcp", ln)))
	require.NoError(t, s.Serve())
	return s, h, ln.Addr().String()
}

func TestInitRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config any
		err    error
	}{
		{"nil", nil, mqtt.ErrInvalidConfigType},
		{"wrong type", &struct{ Path string }{"x"}, mqtt.ErrInvalidConfigType},
		{"no path", &store.Options{}, store.ErrNoPath},
		{"unknown ack mode", &store.Options{Path: t.TempDir(), Acks: 42}, store.ErrUnknownAckMode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, new(store.Hook).Init(tc.config), tc.err)
		})
	}
}

// TestAckedSurvivesLostWrites is the durability contract without a
// process kill: pebble's strict in-memory filesystem drops every write not
// fsynced, as a power cut would, right after the publisher's last PUBACK.
// A restarted broker must still hold every acknowledged message in the
// persistent subscriber's session. Acknowledging before the sync
// (AckImmediate, upstream's behaviour) shows the test can fail.
func TestAckedSurvivesLostWrites(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		mode     store.AckMode
		wantLoss bool
	}{
		{store.AckDurable, false},
		{store.AckBlocking, false},
		{store.AckImmediate, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			fs := vfs.NewStrictMem()
			opts := func() *store.Options {
				return &store.Options{Path: "db", Acks: tc.mode, Pebble: &pebble.Options{FS: fs}}
			}
			srv, _, addr := serve(t, opts())
			sub, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "sub", CleanStart: true, SessionExpiry: 3600})
			require.NoError(t, err)
			require.NoError(t, sub.Subscribe(ctx, "t/#", 1))
			require.NoError(t, sub.Close())

			pub, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "pub", CleanStart: true})
			require.NoError(t, err)
			var wg sync.WaitGroup
			wg.Add(n)
			for i := range n {
				require.NoError(t, pub.Publish(ctx, "t/x", []byte(fmt.Sprint(i)), 1, func(err error) {
					require.NoError(t, err)
					wg.Done()
				}))
			}
			wg.Wait() // every PUBACK is in

			fs.SetIgnoreSyncs(true) // the "power cut": nothing after this is durable
			require.NoError(t, pub.Abort())
			require.NoError(t, srv.Close())
			fs.ResetToSyncedState()
			fs.SetIgnoreSyncs(false)

			srv, _, addr = serve(t, opts())
			defer srv.Close()
			stored := 0
			if cl, ok := srv.Clients.Get("sub"); ok {
				stored = cl.State.Inflight.Len()
			}
			if tc.wantLoss {
				require.Less(t, stored, n, "acks before the sync should lose messages to a power cut")
				return
			}
			require.Equal(t, n, stored, "messages acknowledged to the publisher, in the subscriber's restored session")

			got := make(chan string, n)
			sub, err = rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "sub", SessionExpiry: 3600,
				OnMessage: func(_ string, p []byte, _ bool) { got <- string(p) }})
			require.NoError(t, err)
			defer sub.Close()
			seen := map[string]bool{}
			for len(seen) < n {
				select {
				case p := <-got:
					seen[p] = true
				case <-ctx.Done():
					t.Fatalf("subscriber got %d of %d acknowledged messages after the restart", len(seen), n)
				}
			}
		})
	}
}

// TestStatsCountGroupCommits checks the latency export the broker's
// /metrics reads (pipelined publishes share fsyncs), and that deferred
// acks keep the publisher's order.
func TestStatsCountGroupCommits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, h, addr := serve(t, &store.Options{Path: t.TempDir()})
	defer srv.Close()
	pub, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "pub", CleanStart: true})
	require.NoError(t, err)
	defer pub.Close()
	const n = 500
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		order []int
		errs  []error
	)
	wg.Add(n)
	for i := range n {
		// The callback runs on the client's goroutine: it records, and the
		// test goroutine asserts, so a failure fails rather than hangs.
		require.NoError(t, pub.Publish(ctx, "t/x", []byte("m"), 1, func(err error) {
			mu.Lock()
			order = append(order, i)
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
			wg.Done()
		}))
	}
	wg.Wait()
	require.Empty(t, errs)
	require.IsIncreasing(t, order, "PUBACKs arrive in publish order (MQTT-4.6.0-2)")
	st := h.Stats()
	require.GreaterOrEqual(t, st.Released, uint64(n))
	require.Equal(t, st.Syncs, st.SyncSeconds.Count)
	require.Less(t, st.Syncs, uint64(n), "a pipelined connection's publishes share fsyncs")
	require.GreaterOrEqual(t, st.AckDelaySeconds.Count, uint64(n))
	require.Len(t, st.SyncSeconds.Buckets(), len(st.SyncSeconds.Bounds))
	require.False(t, st.SyncSeconds.Quantile(0.5) <= 0)
}

// TestStopReleasesWaiters: a publish waiting for a group commit when the
// broker closes is synced and released, not stranded, and the hook is
// safe to stop twice.
func TestStopReleasesWaiters(t *testing.T) {
	h := new(store.Hook)
	require.NoError(t, h.Init(&store.Options{Path: t.TempDir()}))
	var wg sync.WaitGroup
	const n = 100
	wg.Add(n)
	order := make(chan int, n)
	for i := range n {
		require.True(t, h.DeferAck(nil, zeroPacket, func() { order <- i; wg.Done() }))
	}
	require.NoError(t, h.Stop())
	wg.Wait()
	close(order)
	want := 0
	for i := range order {
		require.Equal(t, want, i, "acks leave in the order they were deferred")
		want++
	}
	require.NoError(t, h.Stop())
	released := make(chan struct{})
	h.DeferAck(nil, zeroPacket, func() { close(released) })
	<-released // after Stop, released at once
}

var zeroPacket = packets.Packet{}

// TestInboundIDsLeaveOutboundAlone covers Sentinel patch 6: a client that
// subscribes and publishes at QoS 1 picks its publishes' packet IDs
// independently of the IDs the broker gives the messages it sends it.
// Upstream deleted the client's unacknowledged outbound message whose ID
// an incoming publish reused (and so its stored copy and send quota).
func TestInboundIDsLeaveOutboundAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, _, addr := serve(t, &store.Options{Path: t.TempDir()})
	defer srv.Close()

	// c holds the first message it receives unacknowledged: its reader
	// waits in OnMessage until release, so the PUBACKs wait too.
	release := make(chan struct{})
	got := make(chan struct{}, 2)
	c, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "both", CleanStart: true, SessionExpiry: 3600,
		OnMessage: func(string, []byte, bool) { got <- struct{}{}; <-release }})
	require.NoError(t, err)
	defer c.Close()
	// Released before Close, or c's reader would stay blocked.
	defer close(release)
	require.NoError(t, c.Subscribe(ctx, "cmd/#", 1)) // c's packet ID 1
	watcher := make(chan string, 1)
	w, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "watcher", CleanStart: true,
		OnMessage: func(topic string, _ []byte, _ bool) { watcher <- topic }})
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Subscribe(ctx, "status/#", 1))

	p, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "p", CleanStart: true})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.PublishWait(ctx, "cmd/1", []byte("a"))) // to c as packet ID 1
	require.NoError(t, p.PublishWait(ctx, "cmd/2", []byte("b"))) // to c as packet ID 2

	// c is holding both.
	<-got

	cl, ok := srv.Clients.Get("both")
	require.True(t, ok)
	_, ok = cl.State.Inflight.Get(2)
	require.True(t, ok, "the broker's second message to c awaits its PUBACK")

	// c publishes with its own packet ID 2 (its subscribe took 1).
	require.NoError(t, c.Publish(ctx, "status/x", []byte("s"), 1, func(error) {}))
	select {
	case <-watcher: // the broker has processed c's publish
	case <-ctx.Done():
		t.Fatal("c's publish never arrived")
	}
	pk, ok := cl.State.Inflight.Get(2)
	require.True(t, ok, "c's publish with packet ID 2 deleted the broker's unacknowledged message 2 to c")
	require.Equal(t, "cmd/2", pk.TopicName)
}
