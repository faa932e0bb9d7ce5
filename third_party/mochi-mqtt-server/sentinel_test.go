// SPDX-License-Identifier: MIT

package mqtt

// Tests of Sentinel's patches (README.sentinel.md) that upstream's tests do
// not cover.

import (
	"bufio"
	"fmt"
	"io"
	"math/rand"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

// dropRecorder is a hook that records the messages OnInflightDropped tells it of.
type dropRecorder struct {
	HookBase
	mu      sync.Mutex
	dropped []packets.Packet
}

func (h *dropRecorder) ID() string { return "drop-recorder" }

func (h *dropRecorder) Provides(b byte) bool { return b == OnInflightDropped }

func (h *dropRecorder) OnInflightDropped(cl *Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropped = append(h.dropped, pk)
}

func (h *dropRecorder) topics() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, pk := range h.dropped {
		out = append(out, pk.TopicName)
	}
	return out
}

func TestInflightDroppedCallsHook(t *testing.T) {
	// A full inflight store no longer drops (patch 11: the backlog, or
	// past the limit without one); a session out of packet IDs without a
	// backlog still does.
	tests := []struct {
		name string
		fill func(s *Server, cl *Client) // leaves cl's session unable to take a message
	}{
		{"packet ids exhausted", func(s *Server, cl *Client) {
			for i := uint32(0); i <= cl.ops.options.Capabilities.maximumPacketID; i++ {
				cl.State.Inflight.Set(packets.Packet{PacketID: uint16(i)})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			rec := new(dropRecorder)
			require.NoError(t, s.AddHook(rec, nil))
			cl, _, _ := newTestClient()
			tt.fill(s, cl)

			pk := *packets.TPacketData[packets.Publish].Get(packets.TPublishQos1).Packet
			_, err := s.publishToClient(cl, packets.Subscription{Filter: pk.TopicName, Qos: 1}, pk)
			require.ErrorIs(t, err, packets.ErrQuotaExceeded)
			require.Equal(t, int64(1), atomic.LoadInt64(&s.Info.InflightDropped))
			require.Equal(t, []string{pk.TopicName}, rec.topics(), "the hook is told of the drop, with the message")
		})
	}
}

func TestLoadCountsRestoredStateNotTheSnapshot(t *testing.T) {
	s := newServer()
	cl := s.NewClient(nil, "tcp", "sub", false)
	s.Clients.Add(cl)
	s.loadSubscriptions([]storage.Subscription{
		{Client: "sub", Filter: "a/b"}, {Client: "sub", Filter: "c/#"},
	})
	s.loadInflight([]storage.Message{
		{Client: "sub", ID: "sub_1", Origin: "p", TopicName: "a/b", PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}},
		{Client: "sub", ID: "sub_2", Origin: "p", TopicName: "a/b", PacketID: 2, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}},
		{Client: "sub", ID: "sub_3", Origin: "p", TopicName: "a/b", PacketID: 3, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}},
		{Client: "gone", ID: "gone_1", Origin: "p", TopicName: "a/b", PacketID: 1, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}},
	})
	s.loadRetained([]storage.Message{
		{ID: "r1", TopicName: "r/1", Payload: []byte("x"), FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}},
	})
	// The snapshot was written at the last $SYS tick, before these
	// messages arrived (or after others were acknowledged).
	s.loadServerInfo(system.Info{Inflight: 0, Subscriptions: 7, Retained: 4})

	require.Equal(t, int64(3), atomic.LoadInt64(&s.Info.Inflight), "the messages loaded for a known client")
	require.Equal(t, int64(2), atomic.LoadInt64(&s.Info.Subscriptions))
	require.Equal(t, int64(1), atomic.LoadInt64(&s.Info.Retained))

	for id := uint16(1); id <= 3; id++ {
		require.NoError(t, s.processPuback(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id}))
	}
	require.Equal(t, int64(0), atomic.LoadInt64(&s.Info.Inflight), "never below zero once all are acknowledged")
}

// sharedServer returns a server whose shared group g holds the clients
// ids, connected (over pipes nobody reads) and with send quota.
func sharedServer(t *testing.T, ids ...string) (*Server, map[string]*Client) {
	t.Helper()
	s := newServer()
	s.Options.Capabilities.MaximumInflight = 3
	clients := map[string]*Client{}
	for _, id := range ids {
		r, w := net.Pipe()
		t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
		cl := s.NewClient(w, "tcp", id, false)
		cl.State.Inflight.ResetSendQuota(10)
		s.Clients.Add(cl)
		s.Topics.Subscribe(id, packets.Subscription{Filter: "$share/g/a/b", Qos: 1})
		clients[id] = cl
	}
	return s, clients
}

// selected returns the member of group g that selectShared picks for a
// message to a/b.
func selected(t *testing.T, s *Server) string {
	t.Helper()
	subs := s.Topics.Subscribers("a/b")
	s.selectShared(subs)
	require.Len(t, subs.SharedSelected, 1)
	for id := range subs.SharedSelected {
		return id
	}
	return ""
}

func TestSelectSharedTakesTurns(t *testing.T) {
	s, _ := sharedServer(t, "c1", "c2", "c3", "c4")
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		counts[selected(t, s)]++
	}
	// Upstream took the first entry of a map iteration: for four members,
	// one got about 5/8 of the messages.
	require.Equal(t, map[string]int{"c1": 100, "c2": 100, "c3": 100, "c4": 100}, counts)
}

func TestSelectSharedAvoidsMembersWithoutRoom(t *testing.T) {
	s, clients := sharedServer(t, "c1", "c2", "c3")
	fill := func(id string) {
		for i := uint16(1); i <= 3; i++ {
			clients[id].State.Inflight.Set(packets.Packet{PacketID: i})
		}
	}
	fill("c1")
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		counts[selected(t, s)]++
	}
	require.Zero(t, counts["c1"], "a full member is not chosen while others have room")
	require.Equal(t, 50, counts["c2"])
	require.Equal(t, 50, counts["c3"])

	// c2 has room but no send quota (its receive maximum is reached): c3,
	// which can send at once, goes first.
	clients["c2"].State.Inflight.ResetSendQuota(1)
	clients["c2"].State.Inflight.DecreaseSendQuota()
	counts = map[string]int{}
	for i := 0; i < 10; i++ {
		counts[selected(t, s)]++
	}
	require.Equal(t, map[string]int{"c3": 10}, counts)

	// c3 disconnects: c2 (room, waiting for quota) and c3 (room, waiting
	// for its connection) share the messages; c1 is still full.
	clients["c3"].Stop(nil)
	counts = map[string]int{}
	for i := 0; i < 10; i++ {
		counts[selected(t, s)]++
	}
	require.Equal(t, map[string]int{"c2": 5, "c3": 5}, counts)

	// Everyone full: a member is still chosen (what becomes of the message
	// is publishToClient's business), and the turns still go round.
	fill("c2")
	fill("c3")
	counts = map[string]int{}
	for i := 0; i < 30; i++ {
		counts[selected(t, s)]++
	}
	require.Equal(t, map[string]int{"c1": 10, "c2": 10, "c3": 10}, counts)
}

func TestSelectSharedMergesAClientInTwoGroups(t *testing.T) {
	s := newServer()
	cl := s.NewClient(nil, "tcp", "c1", false)
	s.Clients.Add(cl)
	s.Topics.Subscribe("c1", packets.Subscription{Filter: "$share/g1/a/b", Qos: 0})
	s.Topics.Subscribe("c1", packets.Subscription{Filter: "$share/g2/a/#", Qos: 1})
	subs := s.Topics.Subscribers("a/b")
	s.selectShared(subs)
	require.Len(t, subs.SharedSelected, 1)
	require.Equal(t, byte(1), subs.SharedSelected["c1"].Qos, "the two groups' subscriptions merged, the higher QoS kept")
}

func TestSharedTurnsStayBounded(t *testing.T) {
	s, _ := sharedServer(t, "c1")
	for i := 0; i < maxSharedTurns+10; i++ {
		s.pickSharedMember(fmt.Sprintf("$share/g%d/a/b", i), map[string]packets.Subscription{"c1": {}})
	}
	require.LessOrEqual(t, len(s.sharedTurns.next), maxSharedTurns)
}

func TestOfflineSessionKeepsMessageExpiry(t *testing.T) {
	// Patch 17, [MQTT-3.3.2-5] and [MQTT-3.3.2-6]: a message stored for a
	// session whose client is offline (or out of send quota) keeps its
	// expiry, so it is deleted once expired and forwarded with the time
	// it has left. Marking it "send when quota allows" set Expiry to -1,
	// so it was delivered at the reconnect hours later, interval unreduced.
	now := time.Now().Unix()
	tests := []struct {
		name    string
		prepare func(cl *Client)
	}{
		{"offline", func(cl *Client) { cl.Net.Conn = nil }},
		{"out of send quota", func(cl *Client) { cl.State.Inflight.sendQuota = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			cl, _, _ := newTestClient()
			cl.Properties.ProtocolVersion = 5
			tt.prepare(cl)

			sub := packets.Subscription{Filter: "a/b", Qos: 1}
			expired := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "a/b",
				Created: now - 3, Expiry: now - 2, ProtocolVersion: 5,
				Properties: packets.Properties{MessageExpiryInterval: 1}}
			live := expired
			live.Expiry = now + 57
			live.Properties.MessageExpiryInterval = 60
			for _, pk := range []packets.Packet{expired, live} {
				_, _ = s.publishToClient(cl, sub, pk)
			}

			stored := cl.State.Inflight.GetAll(false)
			require.Len(t, stored, 2)
			require.ElementsMatch(t, []int64{expired.Expiry, live.Expiry}, []int64{stored[0].Expiry, stored[1].Expiry})
			require.Len(t, cl.State.Inflight.GetAll(true), 2, "both wait to be sent")

			deleted := cl.ClearExpiredInflights(now, 0)
			require.Len(t, deleted, 1, "the expired message is deleted [MQTT-3.3.2-5]")
			next, ok := cl.State.Inflight.NextImmediate()
			require.True(t, ok)
			require.Equal(t, live.Expiry, next.Expiry, "the live one is sent with its expiry, so WritePacket reduces its interval [MQTT-3.3.2-6]")
		})
	}
}

func TestNoDisconnectToMQTT311Clients(t *testing.T) {
	// Patch 18: a server closing a 3.1.1 connection sends nothing first
	// (MQTT 3.1.1 section 3.14: DISCONNECT is the client's only); a v5
	// client gets DISCONNECT with the reason code [MQTT-3.14.2-1].
	for _, tt := range []struct {
		version byte
		want    []byte
	}{{3, []byte{}}, {4, []byte{}}, {5, []byte{0xe0, 0x02, 0x8e, 0x00}}} {
		t.Run(fmt.Sprint("v", tt.version), func(t *testing.T) {
			s := newServer()
			cl, r, w := newTestClient()
			cl.Properties.ProtocolVersion = tt.version
			cl.Properties.Props.RequestProblemInfoFlag, cl.Properties.Props.RequestProblemInfo = true, 0 // no reason string
			go func() {
				_ = s.DisconnectClient(cl, packets.ErrSessionTakenOver)
				_ = w.Close()
			}()
			buf, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, tt.want, buf)
		})
	}
}

func TestMaximumPacketSizeCountsTheWholePacket(t *testing.T) {
	// Patch 19: Maximum Packet Size is "the total number of bytes in the
	// packet" (MQTT v5 3.2.2.3.6): the type byte, the length bytes and
	// the rest. A packet of 200 bytes has a 2-byte length: 197 remaining.
	for _, tt := range []struct {
		max     uint32
		tooLong bool
	}{{200, false}, {199, true}} {
		t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
			r, w := net.Pipe()
			defer r.Close()
			cl := newClient(r, &ops{info: new(system.Info), hooks: new(Hooks), log: logger,
				options: &Options{Capabilities: &Capabilities{MaximumPacketSize: tt.max}}})
			go func() { _, _ = w.Write([]byte{0x30, 0xc5, 0x01}) }() // PUBLISH, remaining 197
			err := cl.ReadFixedHeader(new(packets.FixedHeader))
			if tt.tooLong {
				require.ErrorIs(t, err, packets.ErrPacketTooLarge)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// publishesFrom decodes the PUBLISH packets a test client's WriteLoop
// writes to its pipe (the r of newTestClient), until the pipe closes.
func publishesFrom(t *testing.T, r net.Conn) <-chan packets.Packet {
	got := make(chan packets.Packet, 16)
	go func() {
		defer close(got)
		br := bufio.NewReader(r)
		for {
			fh := new(packets.FixedHeader)
			b, err := br.ReadByte()
			if err != nil {
				return
			}
			if fh.Decode(b) != nil {
				return
			}
			n, _, err := packets.DecodeLength(br)
			if err != nil {
				return
			}
			body := make([]byte, n)
			if _, err = io.ReadFull(br, body); err != nil {
				return
			}
			pk := packets.Packet{FixedHeader: *fh, ProtocolVersion: 5}
			if pk.PublishDecode(body) != nil {
				return
			}
			got <- pk
		}
	}()
	return got
}

func TestResendInOrderWithinReceiveMaximum(t *testing.T) {
	// Patch 21: messages queued for a session come back on its next
	// connection in the order they were published [MQTT-4.6.0-6], with
	// DUP 0 unless they were sent before [MQTT-3.3.1-1], and no more at
	// once than the client's Receive Maximum [MQTT-3.3.4-9]; the rest are
	// released by its PUBACKs, in order.
	s := newServer()
	cl, r, w := newTestClient()
	cl.Properties.ProtocolVersion = 5
	cl.State.Inflight.ResetSendQuota(1) // the first is sent before the client goes
	sub := packets.Subscription{Filter: "a/b", Qos: 1}
	now := time.Now().Unix()
	publish := func(i int) {
		_, _ = s.publishToClient(cl, sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "a/b", Payload: []byte(fmt.Sprint(i)), Created: now}) // all within one second
	}
	got := publishesFrom(t, r)
	publish(0)
	first := <-got
	require.Equal(t, "0", string(first.Payload))
	require.False(t, first.FixedHeader.Dup)

	cl.Net.Conn = nil // offline: the rest wait for the next connection
	for i := 1; i < 8; i++ {
		publish(i)
	}
	cl.Net.Conn = w
	cl.State.Inflight.ResetSendQuota(3) // the new connection's Receive Maximum
	require.NoError(t, cl.ResendInflightMessages(true))
	var order []string
	for i := 0; i < 3; i++ {
		pk := <-got
		order = append(order, string(pk.Payload))
		require.Equal(t, pk.Payload[0] == '0', pk.FixedHeader.Dup, "DUP only on the one sent before: %s", pk.Payload)
	}
	require.Equal(t, []string{"0", "1", "2"}, order)
	require.Len(t, cl.State.Inflight.GetAll(true), 5, "five wait for PUBACKs")
	for want := 3; want < 8; want++ {
		next, ok := cl.State.Inflight.NextImmediate()
		require.True(t, ok)
		require.Equal(t, fmt.Sprint(want), string(next.Payload))
		require.False(t, next.FixedHeader.Dup)
	}
	_ = w.Close()
}

// sessionRecorder is a hook that records the in-flight messages and
// subscriptions the server tells the store hooks to delete.
type sessionRecorder struct {
	HookBase
	mu             sync.Mutex
	dropped        []uint16
	unsubscribed   []string
	clientsExpired int
}

func (h *sessionRecorder) ID() string { return "session-recorder" }

func (h *sessionRecorder) Provides(b byte) bool {
	return b == OnQosDropped || b == OnUnsubscribed || b == OnClientExpired
}

func (h *sessionRecorder) OnQosDropped(cl *Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropped = append(h.dropped, pk.PacketID)
}

func (h *sessionRecorder) OnUnsubscribed(cl *Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range pk.Filters {
		h.unsubscribed = append(h.unsubscribed, f.Filter)
	}
}

func (h *sessionRecorder) OnClientExpired(cl *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clientsExpired++
}

func TestExpiredSessionEndsWithItsMessagesAndSubscriptions(t *testing.T) {
	// Patch 22, [MQTT-4.1.0-2]: when a session expires, its in-flight
	// messages are dropped (so the store deletes their records) and its
	// subscriptions removed, as a clean disconnect does.
	s := newServer()
	rec := new(sessionRecorder)
	require.NoError(t, s.AddHook(rec, nil))
	cl, _, _ := newTestClient()
	cl.ops = &ops{options: s.Options, info: s.Info, hooks: s.hooks, log: s.Log}
	cl.Properties.ProtocolVersion = 5
	cl.Properties.Props.SessionExpiryInterval, cl.Properties.Props.SessionExpiryIntervalFlag = 10, true
	sub := packets.Subscription{Filter: "a/b", Qos: 1}
	cl.State.Subscriptions.Add(sub.Filter, sub)
	s.Topics.Subscribe(cl.ID, sub)
	s.Clients.Add(cl)
	cl.State.Inflight.Set(packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}})
	cl.Stop(nil)

	s.clearExpiredClients(cl.StopTime() + 11)
	_, ok := s.Clients.Get(cl.ID)
	require.False(t, ok)
	require.Zero(t, cl.State.Inflight.Len())
	require.Equal(t, []uint16{7}, rec.dropped, "the store is told to delete the in-flight record")
	require.Equal(t, []string{"a/b"}, rec.unsubscribed)
	require.Equal(t, 1, rec.clientsExpired)
	require.Empty(t, s.Topics.Subscribers("a/b").Subscriptions, "no subscription left for the next connection under the ID")
}

func TestLoadedMessagesKeepTheirExpiry(t *testing.T) {
	// Patch 22, [MQTT-3.3.2-5]: a message loaded from a store (a restart,
	// or a session's backlog on disk) expires by its own interval, not
	// only by the broker's maximum.
	s := newServer()
	s.Options.Capabilities.MaximumMessageExpiryInterval = 86400
	cl, _, _ := newTestClient()
	s.Clients.Add(cl)
	now := time.Now().Unix()
	s.loadInflight([]storage.Message{
		{ID: "i1", Client: cl.ID, PacketID: 1, Created: now - 10, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			Properties: storage.MessageProperties{MessageExpiryInterval: 5}},
		{ID: "i2", Client: cl.ID, PacketID: 2, Created: now - 10, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			Properties: storage.MessageProperties{MessageExpiryInterval: 600}},
		{ID: "i3", Client: cl.ID, PacketID: 3, Created: now - 10, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}},
	})
	require.Equal(t, []uint16{1}, cl.ClearExpiredInflights(now, s.Options.Capabilities.MaximumMessageExpiryInterval))
	kept, ok := cl.State.Inflight.Get(2)
	require.True(t, ok)
	require.Equal(t, now+590, kept.Expiry)
	require.Equal(t, 2, cl.State.Inflight.Len())

	// The same for a message drained from the backlog.
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, Created: now - 10,
		Properties: packets.Properties{MessageExpiryInterval: 5}}
	require.True(t, s.putInflight(cl, pk))
	require.Len(t, cl.ClearExpiredInflights(now, s.Options.Capabilities.MaximumMessageExpiryInterval), 1)
}

// nextFreeByScan is NextPacketID's upstream scan, the reference NextFree
// is held to.
func nextFreeByScan(in *Inflight, after uint16, max uint32) (uint16, bool) {
	id := uint32(after)
	for n := uint32(0); n < max; n++ {
		id++
		if id > max {
			id = 1
		}
		if _, ok := in.Get(uint16(id)); !ok {
			return uint16(id), true
		}
	}
	return 0, false
}

func TestNextFreeMatchesTheScan(t *testing.T) {
	// Patch 23: NextFree finds what the scan found, in map mode (a small
	// store) and bitmap mode, across word edges, wraps and a full store.
	rnd := rand.New(rand.NewSource(1))
	for _, tt := range []struct {
		name string
		max  uint32
		held int
	}{{"small store", 65535, 10}, {"bitmap", 65535, 5000}, {"nearly full", 65535, 65530},
		{"full", 200, 200}, {"small max", 10, 9}, {"words", 130, 100}} {
		t.Run(tt.name, func(t *testing.T) {
			in := NewInflights()
			ids := rnd.Perm(int(tt.max))
			for _, id := range ids[:tt.held] {
				in.Set(packets.Packet{PacketID: uint16(id + 1)})
			}
			for _, after := range []uint16{0, 1, 63, 64, 127, uint16(tt.max - 1), uint16(tt.max), uint16(rnd.Intn(int(tt.max)))} {
				want, wantOK := nextFreeByScan(in, after, tt.max)
				got, ok := in.NextFree(after, tt.max)
				require.Equal(t, wantOK, ok, "after %d", after)
				require.Equal(t, want, got, "after %d", after)
			}
			// Deleting frees the ID again.
			if tt.held > 0 {
				id := uint16(ids[0] + 1)
				in.Delete(id)
				got, ok := in.NextFree(id-1, tt.max)
				require.True(t, ok)
				require.Equal(t, id, got)
			}
		})
	}
}

// BenchmarkNextPacketID allocates a packet ID for a session with 60,000
// messages in flight, as a subscriber has during a fleet's burst: go test
// -bench NextPacketID -run '^$' .
func BenchmarkNextPacketID(b *testing.B) {
	cl, _, _ := newTestClient()
	cl.ops.options.Capabilities.maximumPacketID = 65535
	for id := 1; id <= 60000; id++ {
		cl.State.Inflight.Set(packets.Packet{PacketID: uint16(id)})
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		id, err := cl.NextPacketID()
		if err != nil {
			b.Fatal(err)
		}
		cl.State.Inflight.Set(packets.Packet{PacketID: uint16(id)})
		cl.State.Inflight.Delete(uint16(id))
		atomic.StoreUint32(&cl.State.packetID, 0) // each allocation starts behind the 60,000 held
	}
}

func TestWaitingMessagesAreNotOvertaken(t *testing.T) {
	// Patch 24: a message published while older ones wait for the
	// client's send quota waits behind them, and a freed slot goes to the
	// oldest [MQTT-4.6.0-6]; upstream sent the new one at once, so under a
	// burst the waiting ones starved.
	s := newServer()
	cl, r, w := newTestClient()
	defer w.Close()
	got := publishesFrom(t, r)
	cl.Properties.ProtocolVersion = 5
	cl.ops.options.Capabilities.MaximumInflight = 100
	cl.State.Inflight.ResetSendQuota(2)
	sub := packets.Subscription{Filter: "a/b", Qos: 1}
	publish := func(i int) {
		_, err := s.publishToClient(cl, sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "a/b", Payload: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	publish(1)
	publish(2)
	publish(3) // out of quota: waits
	require.Equal(t, "1", string((<-got).Payload))
	require.Equal(t, "2", string((<-got).Payload))
	cl.State.Inflight.IncreaseSendQuota() // a PUBACK freed a slot
	publish(4)
	require.Equal(t, "3", string((<-got).Payload), "the freed slot goes to the oldest waiting")
	next, ok := cl.State.Inflight.NextImmediate()
	require.True(t, ok)
	require.Equal(t, "4", string(next.Payload))
}

// TestSessionEndingWithItsConnectionIsNotResumed (patch 25): a v5 session
// with Session Expiry 0 whose old connection has ended but not yet been
// cleaned up when the client connects again without Clean Start is not resumed: no
// Session Present, no subscriptions [MQTT-3.1.2-23]. A session with an
// expiry still is.
func TestSessionEndingWithItsConnectionIsNotResumed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expiry uint32
		resume bool
	}{
		{"expiry 0 ends with the connection", 0, false},
		{"expiry 300 resumes", 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer()
			existing, _, _ := newTestClient()
			existing.Net.Conn = nil
			existing.Properties.ProtocolVersion = 5
			existing.Properties.Props.SessionExpiryInterval = tc.expiry
			existing.State.Subscriptions.Add("a/b", packets.Subscription{Filter: "a/b", Qos: 1})
			existing.Stop(packets.CodeDisconnect) // its DISCONNECT is read; the cleanup has not run
			s.Clients.Add(existing)

			cl, _, _ := newTestClient()
			cl.Properties.ProtocolVersion = 5
			resumed := s.inheritClientSession(packets.Packet{Connect: packets.ConnectParams{ClientIdentifier: "mochi"}}, cl)
			require.Equal(t, tc.resume, resumed, "Session Present")
			want := 0
			if tc.resume {
				want = 1
			}
			require.Equal(t, want, cl.State.Subscriptions.Len(), "subscriptions carried over")
		})
	}
}
