package simulator

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/simulator/device"
)

// TestRefusedReadingsAreHeldAndResent: a broker whose only subscriber's
// session is full refuses the device's readings with 0x97 (mochi with
// Sentinel's patch 11 and no backlog); the device keeps them and, once
// the subscriber is back and has room, sends them again, in order, so
// the subscriber ends up with every message of the device, none lost.
func TestRefusedReadingsAreHeldAndResent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = 8
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, srv.AddHook(new(auth.AllowHook), nil))
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	require.NoError(t, srv.AddListener(tcp))
	require.NoError(t, srv.Serve())
	defer srv.Close()
	u, err := url.Parse("tcp://" + tcp.Address())
	require.NoError(t, err)

	var (
		mu   sync.Mutex
		seqs []uint64 // the device's messages, in arrival order
		dups []bool
	)
	subscriber := func(clean bool) *autopaho.ConnectionManager {
		up := make(chan struct{}, 1)
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: clean, SessionExpiryInterval: 3600,
			OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) { up <- struct{}{} },
			ClientConfig: paho.ClientConfig{ClientID: "held-subscriber", OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					_, msg, err := proto.Decode(pr.Packet.Topic, pr.Packet.Payload, 0)
					var seq uint64
					switch m := msg.(type) {
					case *proto.Telemetry:
						seq = m.Seq
					case *proto.StatusEvent:
						seq = m.Seq
					}
					if err == nil && seq < device.WillSeqGap { // not the will, published once the test disconnects
						mu.Lock()
						seqs = append(seqs, seq)
						dups = append(dups, pr.Packet.Duplicate())
						mu.Unlock()
					}
					return true, nil
				}}},
		})
		require.NoError(t, err)
		select {
		case <-up:
		case <-ctx.Done():
			t.Fatal("subscriber did not connect")
		}
		return cm
	}
	sub := subscriber(true)
	_, err = sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fleet/#", QoS: 1}}})
	require.NoError(t, err)
	require.NoError(t, sub.Disconnect(ctx)) // away: its session fills
	<-sub.Done()

	fleet, err := New(Config{Broker: u.String(), Devices: 1, Seed: 7, TelemetryInterval: 20 * time.Millisecond,
		ConnectRate: 1000, Logger: testLogger(t)})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- fleet.Run(runCtx) }()
	require.Eventually(t, func() bool { return fleet.Stats().Refused >= 3 }, 20*time.Second, 5*time.Millisecond,
		"the broker refuses the device once the subscriber's session is full")
	require.EqualValues(t, 8, fleet.Stats().Published, "the session's in-flight window")

	sub = subscriber(false) // back: the device's held readings go through
	defer func() { require.NoError(t, sub.Disconnect(context.Background())) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs) >= 40
	}, 20*time.Second, 5*time.Millisecond)
	st := fleet.Stats() // before the stop, which cuts publishes short
	stop()
	require.NoError(t, <-runErr)
	require.Zero(t, st.HeldDropped)
	require.Zero(t, st.PublishErrors)
	mu.Lock()
	defer mu.Unlock()
	got := slices.Clone(seqs)
	slices.Sort(got)
	got = slices.Compact(got)
	for i := 1; i < len(got); i++ {
		require.Equal(t, got[i-1]+1, got[i], "no message of the device is missing: %v", got)
	}
	var fresh []uint64 // not redelivered from the session: sent as the device sent them
	for i, s := range seqs {
		if !dups[i] {
			fresh = append(fresh, s)
		}
	}
	require.IsIncreasing(t, fresh, "held readings are sent again in order")
}

// TestHeldIsBoundedPerDevice: a device holds at most DeviceHold refused
// readings; past that its newest is dropped (and counted by the caller),
// while another device on the same connection still has room, and what is
// held leaves oldest first.
func TestHeldIsBoundedPerDevice(t *testing.T) {
	a, b := &slot{}, &slot{}
	h := newHeld()
	for range DeviceHold {
		require.True(t, h.add(outbound{s: a}))
	}
	require.False(t, h.add(outbound{s: a}), "a's hold is full")
	require.True(t, h.add(outbound{s: b}), "b's is not")
	h.pop()
	require.True(t, h.add(outbound{s: a}), "a has room again once one left")
	for range DeviceHold - 1 {
		require.Same(t, a, h.queue[0].s)
		h.pop()
	}
	require.Same(t, b, h.queue[0].s, "oldest first")
	h.pop()
	require.Same(t, a, h.queue[0].s)
	h.pop()
	require.Empty(t, h.queue)
	require.Empty(t, h.perSlot)
}
