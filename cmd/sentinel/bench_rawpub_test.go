package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// TestBenchPayload holds the raw publisher's hand-built packets to what the
// paho publisher sends: the payload is proto.Encode's JSON of the same
// message, byte for byte, proto.Decode accepts it on its topic, and paho's
// packet reader reads the PUBLISH back with QoS 1 and its packet ID.
func TestBenchPayload(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 30, 1, 234567891, time.UTC)
	ts := []byte(now.Format(proto.TimeFormat))
	for _, tc := range []struct {
		name    string
		id      int64
		devices int
		pid     uint16
	}{
		{"first", 0, 10000, 1},
		{"one device", 7, 1, 2},
		{"last device", 9999, 10000, 1024},
		{"second round", 10000, 10000, 65535},
		{"seven-digit device", 1234567, 2000000, 300},
		{"large id", 1<<40 + 3, 10000, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := benchMessage(tc.id, tc.devices, now)
			enc, err := proto.Encode(want)
			require.NoError(t, err)
			got := appendBenchPayload(nil, tc.id, tc.devices, ts)
			require.Equal(t, string(enc), string(got))

			topic := proto.TelemetryTopic(want.Region, want.DeviceID)
			_, m, err := proto.Decode(topic, got, 0)
			require.NoError(t, err)
			require.Equal(t, want, m)

			pkt, _ := appendBenchPublish([]byte("tail of the previous packet"), nil, tc.id, tc.devices, ts, tc.pid)
			cp, err := packets.ReadPacket(bytes.NewReader(pkt[len("tail of the previous packet"):]))
			require.NoError(t, err)
			pub, ok := cp.Content.(*packets.Publish)
			require.True(t, ok, "got %s", cp.PacketType())
			require.Equal(t, topic, pub.Topic)
			require.Equal(t, byte(1), pub.QoS)
			require.Equal(t, tc.pid, pub.PacketID)
			require.Equal(t, string(enc), string(pub.Payload))
		})
	}
}
