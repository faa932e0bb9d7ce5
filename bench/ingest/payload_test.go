package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// TestPayload holds the raw publisher's hand-built messages to what the
// paho publisher sends: the payload is proto.Encode's JSON of the same
// message, byte for byte, on the topic proto names for its device, and
// proto.Decode accepts it there.
func TestPayload(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 30, 1, 234567891, time.UTC)
	ts := []byte(now.Format(proto.TimeFormat))
	for _, tc := range []struct {
		name    string
		id      int64
		devices int
	}{
		{"first", 0, 10000},
		{"one device", 7, 1},
		{"last device", 9999, 10000},
		{"second round", 10000, 10000},
		{"seven-digit device", 1234567, 2000000},
		{"large id", 1<<40 + 3, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := message(tc.id, tc.devices, now)
			enc, err := proto.Encode(want)
			require.NoError(t, err)
			got := appendPayload([]byte("tail of the previous payload"), tc.id, tc.devices, ts)
			require.Equal(t, string(enc), string(got[len("tail of the previous payload"):]))

			topic := proto.TelemetryTopic(want.Region, want.DeviceID)
			require.Equal(t, topic, string(appendTopic(nil, tc.id, tc.devices)))
			_, m, err := proto.Decode(topic, enc, 0)
			require.NoError(t, err)
			require.Equal(t, want, m)
		})
	}
}
