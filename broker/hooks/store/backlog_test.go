package store_test

import (
	"fmt"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker/hooks/store"
)

// telemetry is a reading as the simulator sends it (proto.Encode of a
// Telemetry with the optional battery and boot fields), on its topic.
func telemetry(seq int) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "fleet/ap-south/dev-00042-ab12cd/telemetry",
		Payload: fmt.Appendf(nil, `{"v":1,"device_id":"dev-00042-ab12cd","ts":"2026-12-02T07:40:01.123Z","seq":%d,"region":"ap-south",`+
			`"firmware":"1.4.2","state":"downloading","battery_pct":71.5,"charging":false,"rssi_dbm":-88,"temperature_c":31.25,`+
			`"uptime_s":86400,"battery_mv":3912,"boot_count":12}`, seq),
		Created: 1764661201,
	}
}

// TestBacklogRecordSize measures what one reading takes in the backlog,
// the number broker.DefaultBacklogBytes is sized with, and holds the
// store's budget estimate to it.
func TestBacklogRecordSize(t *testing.T) {
	h := new(store.Hook)
	require.NoError(t, h.Init(&store.Options{Path: t.TempDir(), BacklogBytes: 1 << 20}))
	defer h.Stop()
	cl := &mqtt.Client{ID: "ingest-1"}
	const n = 100
	for i := range n {
		require.NoError(t, h.BacklogPush(cl, telemetry(i)))
	}
	held, _ := h.BacklogBytes()
	per := held / n
	t.Logf("payload %d bytes, backlog record %d bytes", len(telemetry(0).Payload), per)
	require.InDelta(t, 600, per, 100, "broker.DefaultBacklogBytes is sized for about 600 bytes per reading; measure again")
	// The estimate admits no more than the budget holds, give or take 20 %.
	require.True(t, h.BacklogFits(telemetry(0), int((1<<20-held)/per)*4/5))
	require.False(t, h.BacklogFits(telemetry(0), int((1<<20-held)/per)*6/5))
}

// TestBacklogOrderAndRestart: a session's backlog drains oldest first,
// in the chunks put accepts, and what is left survives a reopen of the
// store; a discarded backlog is gone, and its session's next message
// starts a fresh queue.
func TestBacklogOrderAndRestart(t *testing.T) {
	dir := t.TempDir()
	h := new(store.Hook)
	require.NoError(t, h.Init(&store.Options{Path: dir, BacklogBytes: 1 << 20}))
	a, b := &mqtt.Client{ID: "a"}, &mqtt.Client{ID: "a/b"} // "a/b" shares a's prefix
	for i := range 10 {
		require.NoError(t, h.BacklogPush(a, telemetry(i)))
		require.NoError(t, h.BacklogPush(b, telemetry(100+i)))
	}
	var got []string
	put := func(limit int) func(packets.Packet) bool {
		return func(pk packets.Packet) bool {
			if len(got) >= limit {
				return false
			}
			got = append(got, string(pk.Payload[len(`{"v":1,"device_id":"dev-00042-ab12cd","ts":"2026-12-02T07:40:01.123Z","seq":`):][:2]))
			return true
		}
	}
	n, err := h.BacklogDrain("a", 3, put(10))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	n, err = h.BacklogDrain("a", 10, put(5)) // put refuses after two more
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []string{"0,", "1,", "2,", "3,", "4,"}, got)
	require.Equal(t, 5, h.BacklogLen("a"))
	require.NoError(t, h.Stop())

	h = new(store.Hook)
	require.NoError(t, h.Init(&store.Options{Path: dir, BacklogBytes: 1 << 20}))
	require.Equal(t, 5, h.BacklogLen("a"), "after a restart")
	require.Equal(t, 10, h.BacklogLen("a/b"))
	got = nil
	n, err = h.BacklogDrain("a", 100, put(100))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.Equal(t, []string{"5,", "6,", "7,", "8,", "9,"}, got)

	require.Equal(t, 10, h.BacklogDiscard("a/b"))
	require.Zero(t, h.BacklogLen("a/b"))
	require.NoError(t, h.BacklogPush(b, telemetry(42)))
	got = nil
	n, err = h.BacklogDrain("a/b", 100, put(100))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"42"}, got)
	held, _ := h.BacklogBytes()
	require.Zero(t, held)
	require.NoError(t, h.Stop())
}
