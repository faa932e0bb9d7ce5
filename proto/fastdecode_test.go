package proto_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// statusPayload is a status event with every field, as the ingestor receives it.
var statusPayload = []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:00.123Z","seq":8,"region":"eu-west","state":"partial","firmware":"2.4.0","target_firmware":"2.4.1","wave":3,"detail":"E_PART_B","result":{"command_id":"cmd-42","action":"retry","outcome":"failed"}}`)

// physicsPayload is a reading from firmware that reports the optional
// device-physics fields, as the ingestor receives it.
var physicsPayload = []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:00.123Z","seq":7,"region":"eu-west","firmware":"2.4.1","state":"installing","battery_pct":87.5,"charging":true,"rssi_dbm":-71,"temperature_c":41.25,"uptime_s":3600,"battery_mv":3912,"battery_cycles":212,"hw_model":"tracker-t1","storage":"single","boot_count":48}`)

// fastCases are payloads at the edges of the fast path: what it takes,
// what it leaves to the reference decoder, and what both reject. Each is
// decoded as telemetry and as a status event.
var fastCases = func() []struct{ name, payload string } {
	tel, st, ph := string(telemetryPayload), string(statusPayload), string(physicsPayload)
	edit := func(base, old, new string) string {
		if !strings.Contains(base, old) {
			panic("fastCases: " + old + " not in " + base)
		}
		return strings.Replace(base, old, new, 1)
	}
	return []struct{ name, payload string }{
		{"telemetry", tel},
		{"status", st},
		{"status minimal", `{"v":1,"device_id":"d","ts":"2024-05-01T10:00:00Z","seq":1,"region":"eu","state":"offline"}`},
		{"whitespace", " \t\r\n" + strings.ReplaceAll(tel, ",", " ,\n\t") + "\r\n "},
		{"unicode space around", "\u00a0" + tel},
		{"trailing data", tel + "{}"},
		{"trailing comma", edit(tel, `}`, `,}`)},
		{"empty object", `{}`},
		{"not an object", `[1]`},
		{"keys reordered", `{"uptime_s":3600,"temperature_c":41.25,"rssi_dbm":-71,"charging":true,"battery_pct":87.5,"state":"installing","firmware":"2.4.1","region":"eu-west","seq":7,"ts":"2024-05-01T10:00:00.123Z","device_id":"dev-1","v":1}`},
		{"duplicate key", edit(tel, `"seq":7`, `"seq":7,"seq":8`)},
		{"duplicate key same value", edit(tel, `"seq":7`, `"seq":7,"seq":7`)},
		{"duplicate key escaped", edit(tel, `"seq":7`, `"seq":7,"s\u0065q":7`)},
		{"duplicate key null", edit(st, `"wave":3`, `"wave":3,"wave":null`)},
		{"duplicate result key", edit(st, `"outcome":"failed"`, `"outcome":"failed","outcome":"failed"`)},
		{"duplicate unknown key", edit(tel, `"seq":7`, `"seq":7,"x":1,"x":1`)},
		{"unknown key", edit(tel, `"seq":7`, `"seq":7,"x":1`)},
		{"key case", edit(tel, `"seq":7`, `"SEQ":7`)},
		{"escaped key", edit(tel, `"seq":7`, `"s\u0065q":7`)},
		{"null", edit(tel, `"seq":7`, `"seq":null`)},
		{"null optional", edit(st, `"wave":3`, `"wave":null`)},
		{"missing", edit(tel, `"seq":7,`, ``)},
		{"missing firmware", edit(st, `"firmware":"2.4.0",`, ``)},
		{"v 2", edit(tel, `"v":1`, `"v":2`)},
		{"v float", edit(tel, `"v":1`, `"v":1.0`)},
		{"v exponent", edit(tel, `"v":1`, `"v":1e0`)},
		{"v string", edit(tel, `"v":1`, `"v":"1"`)},
		{"seq zero", edit(tel, `"seq":7`, `"seq":0`)},
		{"seq negative", edit(tel, `"seq":7`, `"seq":-7`)},
		{"seq negative zero", edit(tel, `"seq":7`, `"seq":-0`)},
		{"seq leading zero", edit(tel, `"seq":7`, `"seq":07`)},
		{"seq max", edit(tel, `"seq":7`, `"seq":18446744073709551615`)},
		{"seq overflow", edit(tel, `"seq":7`, `"seq":18446744073709551616`)},
		{"uptime min", edit(tel, `"uptime_s":3600`, `"uptime_s":-9223372036854775808`)},
		{"uptime max", edit(tel, `"uptime_s":3600`, `"uptime_s":9223372036854775807`)},
		{"uptime overflow", edit(tel, `"uptime_s":3600`, `"uptime_s":9223372036854775808`)},
		{"rssi negative zero", edit(tel, `"rssi_dbm":-71`, `"rssi_dbm":-0`)},
		{"rssi minus", edit(tel, `"rssi_dbm":-71`, `"rssi_dbm":-`)},
		{"battery integer", edit(tel, `87.5`, `87`)},
		{"battery exponent", edit(tel, `87.5`, `8.75E+1`)},
		{"battery negative zero", edit(tel, `87.5`, `-0.0`)},
		{"battery overflow", edit(tel, `87.5`, `1e400`)},
		{"battery underflow", edit(tel, `87.5`, `1e-400`)},
		{"battery huge integer", edit(tel, `87.5`, `123456789012345678901234567890`)},
		{"battery dot", edit(tel, `87.5`, `87.`)},
		{"battery bool", edit(tel, `87.5`, `true`)},
		{"charging false", edit(tel, `"charging":true`, `"charging":false`)},
		{"charging number", edit(tel, `"charging":true`, `"charging":1`)},
		{"charging truthy", edit(tel, `"charging":true`, `"charging":trueish`)},
		{"device escape", edit(tel, `"dev-1"`, `"dev\u002d1"`)},
		{"device newline escape", edit(tel, `"dev-1"`, `"dev\n1"`)},
		{"device control", edit(tel, `"dev-1"`, "\"dev\x011\"")},
		{"firmware utf-8", edit(tel, `"2.4.1"`, `"2.4.1-ß"`)},
		{"firmware bad utf-8", edit(tel, `"2.4.1"`, "\"2.4.1\xff\"")},
		{"firmware nul escape", edit(tel, `"2.4.1"`, `"2.4\u00001"`)},
		{"firmware truncated utf-8", edit(tel, `"2.4.1"`, "\"2.4.1\xc3\"")},
		{"firmware utf-8 surrogate", edit(tel, `"2.4.1"`, "\"2.4.1\xed\xb0\x80\"")},
		{"firmware lone surrogate", edit(tel, `"2.4.1"`, `"2.4.1\ud800"`)},
		{"firmware low surrogate", edit(tel, `"2.4.1"`, `"2.4.1\udc00"`)},
		{"firmware surrogate pair", edit(tel, `"2.4.1"`, `"2.4.1\ud83d\ude00"`)},
		{"firmware escaped replacement", edit(tel, `"2.4.1"`, `"2.4.1\ufffd"`)},
		{"detail bad utf-8", edit(st, `"E_PART_B"`, "\"E_PART\xffB\"")},
		{"detail lone surrogate", edit(st, `"E_PART_B"`, `"E_PART_B\ud800x"`)},
		{"key bad utf-8", edit(tel, `"seq":7`, "\"seq\xff\":7")},
		{"result key bad utf-8", edit(st, `"outcome":`, "\"out\x80come\":")},
		{"nested at max depth", edit(tel, `"dev-1"`, strings.Repeat("[", proto.MaxDepth-1)+strings.Repeat("]", proto.MaxDepth-1))},
		{"nested past max depth", edit(tel, `"dev-1"`, strings.Repeat("[", proto.MaxDepth)+strings.Repeat("]", proto.MaxDepth))},
		{"deep before missing", `{"v":1,"seq":` + strings.Repeat("[", 8000) + strings.Repeat("]", 8000) + `}`},
		{"result nested past max depth", edit(st, `"cmd-42"`, strings.Repeat(`{"a":`, proto.MaxDepth)+"1"+strings.Repeat("}", proto.MaxDepth))},
		{"region mismatch case", edit(tel, `"eu-west"`, `"EU-west"`)},
		{"state unknown", edit(tel, `"installing"`, `"sleeping"`)},
		{"state escaped", edit(tel, `"installing"`, `"install\u0069ng"`)},
		{"ts offset", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-05-01T12:00:00.123+02:00`)},
		{"ts nanoseconds", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-05-01T10:00:00.123456789Z`)},
		{"ts lowercase", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-05-01t10:00:00.123z`)},
		{"ts leap day", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-02-29T10:00:00.123Z`)},
		{"ts no leap day", edit(tel, `2024-05-01T10:00:00.123Z`, `2023-02-29T10:00:00.123Z`)},
		{"ts april 31", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-04-31T10:00:00.123Z`)},
		{"ts hour 24", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-05-01T24:00:00.123Z`)},
		{"ts leap second", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-05-01T23:59:60.123Z`)},
		{"ts year 0", edit(tel, `2024-05-01T10:00:00.123Z`, `0000-01-01T00:00:00.000Z`)},
		{"ts zero time", edit(tel, `2024-05-01T10:00:00.123Z`, `0001-01-01T00:00:00.000Z`)},
		{"ts zero time status", edit(st, `2024-05-01T10:00:00.123Z`, `0001-01-01T00:00:00.000Z`)},
		{"ts year 9999", edit(tel, `2024-05-01T10:00:00.123Z`, `9999-12-31T23:59:59.999Z`)},
		{"ts min", edit(tel, `2024-05-01T10:00:00.123Z`, `1900-01-01T00:00:00.000Z`)},
		{"ts before min", edit(tel, `2024-05-01T10:00:00.123Z`, `1899-12-31T23:59:59.999Z`)},
		{"ts max", edit(tel, `2024-05-01T10:00:00.123Z`, `2262-04-11T23:47:16.854Z`)},
		{"ts after max", edit(st, `2024-05-01T10:00:00.123Z`, `2262-04-11T23:47:16.855Z`)},
		{"ts number", edit(tel, `"2024-05-01T10:00:00.123Z"`, `1714557600`)},
		{"ts escaped", edit(tel, `2024-05-01T10:00:00.123Z`, `2024-05-01T10:00:00.123\u005a`)},
		{"wave too large", edit(st, `"wave":3`, `"wave":1001`)},
		{"wave float", edit(st, `"wave":3`, `"wave":3.5`)},
		{"result null", edit(st, `{"command_id":"cmd-42","action":"retry","outcome":"failed"}`, `null`)},
		{"result string", edit(st, `{"command_id":"cmd-42","action":"retry","outcome":"failed"}`, `"x"`)},
		{"result empty", edit(st, `{"command_id":"cmd-42","action":"retry","outcome":"failed"}`, `{}`)},
		{"result unknown key", edit(st, `"outcome":"failed"`, `"outcome":"failed","x":1`)},
		{"result null key", edit(st, `"outcome":"failed"`, `"outcome":null`)},
		{"result bad outcome", edit(st, `"outcome":"failed"`, `"outcome":"meh"`)},
		{"result action none", edit(st, `"action":"retry"`, `"action":"none"`)},
		{"result twice", edit(st, `"wave":3`, `"result":{"command_id":"c","action":"halt","outcome":"ok"},"wave":3`)},
		{"physics", ph},
		{"physics keys first", `{"boot_count":48,"storage":"ab","hw_model":"m","battery_cycles":0,"battery_mv":0,` + tel[1:]},
		{"physics battery_mv max", edit(ph, `"battery_mv":3912`, `"battery_mv":30000`)},
		{"physics battery_mv over max", edit(ph, `"battery_mv":3912`, `"battery_mv":30001`)},
		{"physics battery_mv negative", edit(ph, `"battery_mv":3912`, `"battery_mv":-1`)},
		{"physics battery_mv float", edit(ph, `"battery_mv":3912`, `"battery_mv":3912.0`)},
		{"physics battery_mv null", edit(ph, `"battery_mv":3912`, `"battery_mv":null`)},
		{"physics battery_mv twice", edit(ph, `"battery_mv":3912`, `"battery_mv":3912,"battery_mv":3900`)},
		{"physics battery_cycles over max", edit(ph, `"battery_cycles":212`, `"battery_cycles":100001`)},
		{"physics battery_cycles overflow", edit(ph, `"battery_cycles":212`, `"battery_cycles":9223372036854775808`)},
		{"physics boot_count max", edit(ph, `"boot_count":48`, `"boot_count":4294967295`)},
		{"physics boot_count over max", edit(ph, `"boot_count":48`, `"boot_count":4294967296`)},
		{"physics boot_count negative", edit(ph, `"boot_count":48`, `"boot_count":-48`)},
		{"physics hw_model empty", edit(ph, `"hw_model":"tracker-t1"`, `"hw_model":""`)},
		{"physics hw_model escape", edit(ph, `"hw_model":"tracker-t1"`, `"hw_model":"tracker\u002dt1"`)},
		{"physics hw_model bad utf-8", edit(ph, `"hw_model":"tracker-t1"`, "\"hw_model\":\"t\xff1\"")},
		{"physics hw_model number", edit(ph, `"hw_model":"tracker-t1"`, `"hw_model":1`)},
		{"physics storage ab", edit(ph, `"storage":"single"`, `"storage":"ab"`)},
		{"physics storage empty", edit(ph, `"storage":"single"`, `"storage":""`)},
		{"physics storage unknown", edit(ph, `"storage":"single"`, `"storage":"nor"`)},
		{"physics storage case", edit(ph, `"storage":"single"`, `"storage":"Single"`)},
		{"physics storage escaped", edit(ph, `"storage":"single"`, `"storage":"\u0061b"`)},
		{"physics storage number", edit(ph, `"storage":"single"`, `"storage":2`)},
		{"physics in a status", edit(st, `"wave":3`, `"wave":3,"battery_mv":3912`)},
		{"truncated", tel[:len(tel)-1]},
		{"too large", `{"detail":"` + strings.Repeat("x", proto.DefaultMaxPayload) + `"}`},
	}
}()

// requireSameDecode decodes b with the decoder and with the reference
// decoder alone and requires the same message and the same error.
func requireSameDecode[M proto.Message](t *testing.T, b []byte, decode, reference func([]byte) (M, error)) {
	t.Helper()
	m, err := decode(b)
	rm, rerr := reference(b)
	require.Equal(t, rm, m, "payload %q", b)
	if rerr == nil {
		require.NoError(t, err, "payload %q", b)
		return
	}
	require.Error(t, err, "payload %q: the reference says %v", b, rerr)
	require.Equal(t, rerr.Error(), err.Error(), "payload %q", b)
	require.Equal(t, proto.Reason(rerr), proto.Reason(err), "payload %q", b)
}

func TestFastDecodeMatchesReference(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			requireSameDecode(t, []byte(tc.payload), proto.DecodeTelemetry, proto.DecodeTelemetryReference)
			requireSameDecode(t, []byte(tc.payload), proto.DecodeStatus, proto.DecodeStatusReference)
		})
	}
}

// FuzzFastDecode checks the fast path against the reference decoder on
// arbitrary payloads: the same message, the same error text and reason.
func FuzzFastDecode(f *testing.F) {
	for _, tc := range fastCases {
		f.Add([]byte(tc.payload))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSameDecode(t, b, proto.DecodeTelemetry, proto.DecodeTelemetryReference)
		requireSameDecode(t, b, proto.DecodeStatus, proto.DecodeStatusReference)
	})
}

// TestWireTime holds the fast path's timestamp parser to time.Parse: where
// it answers, it answers as time.Parse does.
func TestWireTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool // the fast parser takes it
	}{
		{"2024-05-01T10:00:00.123Z", true},
		{"0000-01-01T00:00:00.000Z", true},
		{"9999-12-31T23:59:59.999Z", true},
		{"2024-02-29T00:00:00.000Z", true},
		{"2023-02-29T00:00:00.000Z", false},
		{"2024-04-31T00:00:00.000Z", false},
		{"2024-00-01T00:00:00.000Z", false},
		{"2024-13-01T00:00:00.000Z", false},
		{"2024-01-00T00:00:00.000Z", false},
		{"2024-01-32T00:00:00.000Z", false},
		{"2024-01-01T24:00:00.000Z", false},
		{"2024-01-01T23:60:00.000Z", false},
		{"2024-01-01T23:59:60.000Z", false},
		{"2024-01-01T23:59:59.-00Z", false},
		{"2024-01-01T23:59:59.000+00:00", false},
		{"2024-01-01 23:59:59.000Z", false},
		{"+024-01-01T23:59:59.000Z", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := proto.WireTime([]byte(tc.in))
			require.Equal(t, tc.fast, ok)
			if !ok {
				return
			}
			want, err := time.Parse(time.RFC3339Nano, tc.in)
			require.NoError(t, err)
			require.Equal(t, want.UTC(), got)
		})
	}
}

// BenchmarkDecode compares the fast path with the reference decoder on
// the two messages the ingestor decodes.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload []byte
		decode  func([]byte) error
	}{
		{"telemetry/fast", telemetryPayload, func(p []byte) error { _, err := proto.DecodeTelemetry(p); return err }},
		{"telemetry/reference", telemetryPayload, func(p []byte) error { _, err := proto.DecodeTelemetryReference(p); return err }},
		{"telemetry-physics/fast", physicsPayload, func(p []byte) error { _, err := proto.DecodeTelemetry(p); return err }},
		{"telemetry-physics/reference", physicsPayload, func(p []byte) error { _, err := proto.DecodeTelemetryReference(p); return err }},
		{"status/fast", statusPayload, func(p []byte) error { _, err := proto.DecodeStatus(p); return err }},
		{"status/reference", statusPayload, func(p []byte) error { _, err := proto.DecodeStatusReference(p); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if err := bc.decode(bc.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastPathTakes names payloads the fast path must decode on its own,
// so the benchmark above measures what the ingestor runs, and a few it
// must leave to the reference decoder.
func TestFastPathTakes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kind    proto.Kind
		payload string
		want    bool
	}{
		{"telemetry", proto.KindTelemetry, string(telemetryPayload), true},
		{"status", proto.KindStatus, string(statusPayload), true},
		{"telemetry with physics", proto.KindTelemetry, string(physicsPayload), true},
		{"physics out of range is Validate's", proto.KindTelemetry, strings.Replace(string(physicsPayload), `"storage":"single"`, `"storage":"nor"`, 1), true},
		{"status minimal", proto.KindStatus, `{"v":1,"device_id":"d","ts":"2024-05-01T10:00:00Z","seq":1,"region":"eu","state":"offline"}`, true},
		{"whitespace", proto.KindTelemetry, " {\n" + strings.ReplaceAll(string(telemetryPayload[1:]), ",", " ,\n ") + "\n", true},
		{"out of range is Validate's", proto.KindTelemetry, strings.Replace(string(telemetryPayload), "87.5", "187.5", 1), true},
		{"status as telemetry", proto.KindTelemetry, string(statusPayload), false},
		{"escape", proto.KindTelemetry, strings.Replace(string(telemetryPayload), "dev-1", `dev\u002d1`, 1), false},
		{"null", proto.KindStatus, strings.Replace(string(statusPayload), `"wave":3`, `"wave":null`, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, proto.FastPathTakes(tc.kind, []byte(tc.payload)))
		})
	}
}
