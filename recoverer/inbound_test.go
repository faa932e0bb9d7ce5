package recoverer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// TestDecode: every message the recoverer subscribes to becomes one typed
// inbound, or an error whose reason is proto's, in one call.
func TestDecode(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	encode := func(m proto.Message) []byte {
		b, err := proto.Encode(m)
		require.NoError(t, err)
		return b
	}
	reading := encode(&proto.Telemetry{Header: proto.NewHeader("d1", at, 7), Region: "eu", Firmware: "1.0.0",
		State: proto.StateIdle, BatteryPct: 55.5, Charging: true, RSSI: -80, TemperatureC: 21, UptimeS: 9})
	status := encode(&proto.StatusEvent{Header: proto.NewHeader("d1", at, 8), Region: "eu", State: proto.StatePartial,
		Firmware: "1.0.0", TargetFirmware: "1.1.0"})
	result := encode(&proto.StatusEvent{Header: proto.NewHeader("d1", at, 9), Region: "eu", State: proto.StateUpdated,
		Firmware: "1.1.0", TargetFirmware: "1.1.0",
		Result: &proto.CommandResult{CommandID: "c-1", Action: proto.ActionRetry, Outcome: proto.OutcomeOK}})
	command := encode(&proto.Command{Header: proto.NewHeader("d1", at, 1), CommandID: "c-1", Action: proto.ActionRetry, TargetFirmware: "1.1.0"})

	// got is what a test compares of an inbound: the kind's fields, and
	// of the message the header, state and result.
	type got struct {
		kind             inboundKind
		region, firmware string
		cleared          bool
		device           string
		seq              uint64
		state            proto.State
		result           *proto.CommandResult
	}
	summary := func(in inbound) got {
		g := got{kind: in.kind, region: in.region, firmware: in.firmware, cleared: in.cleared}
		switch {
		case in.reading != nil && in.status != nil:
			t.Fatal("an inbound carries one message")
		case in.reading != nil:
			g.device, g.seq, g.state = in.reading.DeviceID, in.reading.Seq, in.reading.State
		case in.status != nil:
			g.device, g.seq, g.state, g.result = in.status.DeviceID, in.status.Seq, in.status.State, in.status.Result
		}
		return g
	}

	for _, tc := range []struct {
		name    string
		topic   string
		payload []byte
		want    got
		reason  string // proto.Reason of the error; "" for none
		skipped bool   // errNotActed
	}{
		{name: "telemetry", topic: "fleet/eu/d1/telemetry", payload: reading,
			want: got{kind: inReading, region: "eu", device: "d1", seq: 7, state: proto.StateIdle}},
		{name: "status", topic: "fleet/eu/d1/status", payload: status,
			want: got{kind: inStatus, region: "eu", device: "d1", seq: 8, state: proto.StatePartial}},
		{name: "command result", topic: "fleet/eu/d1/status", payload: result,
			want: got{kind: inStatus, region: "eu", device: "d1", seq: 9, state: proto.StateUpdated,
				result: &proto.CommandResult{CommandID: "c-1", Action: proto.ActionRetry, Outcome: proto.OutcomeOK}}},
		{name: "advisory", topic: "sentinel/rollout/1.1.0/halt", payload: []byte(`{"v":1}`),
			want: got{kind: inAdvisory, firmware: "1.1.0"}},
		{name: "advisory cleared", topic: "sentinel/rollout/1.1.0/halt",
			want: got{kind: inAdvisory, firmware: "1.1.0", cleared: true}},
		{name: "malformed JSON", topic: "fleet/eu/d1/status", payload: []byte(`{"v":1,"device_id":"d1",`), reason: "malformed"},
		{name: "telemetry on the status topic", topic: "fleet/eu/d1/status", payload: reading, reason: "unknown_field"},
		{name: "another device's status", topic: "fleet/eu/d2/status", payload: status, reason: "topic_mismatch"},
		{name: "another region's reading", topic: "fleet/us/d1/telemetry", payload: reading, reason: "topic_mismatch"},
		{name: "unknown kind", topic: "fleet/eu/d1/logs", payload: status, reason: "bad_topic"},
		{name: "not a device topic", topic: "sentinel/recovery/eu/d1", payload: status, reason: "bad_topic"},
		{name: "wildcard in the device level", topic: "fleet/eu/+/status", payload: status, reason: "bad_topic"},
		{name: "command", topic: "fleet/eu/d1/cmd", payload: command, skipped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := decode(tc.topic, tc.payload, at)
			switch {
			case tc.skipped:
				require.ErrorIs(t, err, errNotActed)
				return
			case tc.reason != "":
				require.Error(t, err)
				require.NotErrorIs(t, err, errNotActed)
				require.Equal(t, tc.reason, proto.Reason(err), "%v", err)
				require.Contains(t, err.Error(), tc.topic, "the error names the topic")
				require.Zero(t, in.kind)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, summary(in))
			require.Equal(t, at, in.received)
		})
	}
}
