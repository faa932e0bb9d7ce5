package proto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// fixtureTS is the timestamp of every fixture, already at wire precision.
var fixtureTS = time.Date(2024, 5, 1, 10, 0, 0, 123_000_000, time.UTC)

func telemetryFixture() *proto.Telemetry {
	return &proto.Telemetry{
		Header:       proto.NewHeader("dev-1", fixtureTS, 7),
		Region:       "eu-west",
		Firmware:     "2.4.1",
		State:        proto.StateInstalling,
		BatteryPct:   87.5,
		Charging:     true,
		RSSI:         -71,
		TemperatureC: 41.25,
		UptimeS:      3600,
		// The optional device-physics fields, so every table below runs
		// over them too; v1Telemetry is the reading without them.
		BatteryMV:     3912,
		BatteryCycles: 212,
		HWModel:       "tracker-t1",
		Storage:       proto.StorageSingle,
		BootCount:     48,
	}
}

// v1Telemetry is a reading from firmware that predates the device-physics
// fields: it decodes exactly as before, the new fields unknown (zero).
func v1Telemetry() *proto.Telemetry {
	m := telemetryFixture()
	m.BatteryMV, m.BatteryCycles, m.HWModel, m.Storage, m.BootCount = 0, 0, "", "", 0
	return m
}

func statusFixture() *proto.StatusEvent {
	return &proto.StatusEvent{
		Header:         proto.NewHeader("dev-1", fixtureTS, 8),
		Region:         "eu-west",
		State:          proto.StatePartial,
		Firmware:       "2.4.0",
		TargetFirmware: "2.4.1",
		Detail:         "E_PART_B: partition b short write",
		Result:         &proto.CommandResult{CommandID: "cmd-42", Action: proto.ActionRetry, Outcome: proto.OutcomeFailed},
	}
}

func commandFixture() *proto.Command {
	return &proto.Command{
		Header:         proto.NewHeader("dev-1", fixtureTS, 3),
		CommandID:      "cmd-43",
		Action:         proto.ActionRollback,
		TargetFirmware: "2.3.9",
		Reason:         "partial_after_retry",
	}
}

func decisionFixture() *proto.Decision {
	return &proto.Decision{
		Header:     proto.NewHeader("dev-1", fixtureTS, 4),
		Region:     "eu-west",
		Action:     proto.ActionDefer,
		Reason:     "low_battery",
		CommandID:  "cmd-44",
		State:      proto.StateInstallFailed,
		Firmware:   "2.4.0",
		BatteryPct: 12,
		RSSI:       -90,
		Attempt:    1,
	}
}

// kinds lists the four messages with their decoder and a fixture.
var kinds = []struct {
	name    string
	fixture func() proto.Message
	decode  func([]byte) (proto.Message, error)
}{
	{name: "telemetry", fixture: func() proto.Message { return telemetryFixture() }, decode: func(b []byte) (proto.Message, error) { return proto.DecodeTelemetry(b) }},
	{name: "status", fixture: func() proto.Message { return statusFixture() }, decode: func(b []byte) (proto.Message, error) { return proto.DecodeStatus(b) }},
	{name: "command", fixture: func() proto.Message { return commandFixture() }, decode: func(b []byte) (proto.Message, error) { return proto.DecodeCommand(b) }},
	{name: "decision", fixture: func() proto.Message { return decisionFixture() }, decode: func(b []byte) (proto.Message, error) { return proto.DecodeDecision(b) }},
}

// reasons is the Reason code each sentinel error must map to.
var reasons = map[error]string{
	proto.ErrTooLarge:      "too_large",
	proto.ErrMalformed:     "malformed",
	proto.ErrTooDeep:       "too_deep",
	proto.ErrInvalidUTF8:   "invalid_utf8",
	proto.ErrDuplicateKey:  "duplicate_key",
	proto.ErrWrongType:     "wrong_type",
	proto.ErrMissingField:  "missing_field",
	proto.ErrUnknownField:  "unknown_field",
	proto.ErrOutOfRange:    "out_of_range",
	proto.ErrTSOutOfRange:  "ts_out_of_range",
	proto.ErrUnknownState:  "unknown_value",
	proto.ErrVersion:       "bad_version",
	proto.ErrTopicMismatch: "topic_mismatch",
	proto.ErrBadTopic:      "bad_topic",
}

// absent, as an edit's value, deletes the key.
type absentT struct{}

var absent absentT

// raw is a JSON value written verbatim into a payload.
type raw = json.RawMessage

// toMap turns m into a generic JSON object so tests can edit it.
func toMap(t testing.TB, m proto.Message) map[string]any {
	t.Helper()
	b, err := proto.Encode(m)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	require.NoError(t, dec.Decode(&obj))
	return obj
}

// edit returns m encoded with the key/value pairs in kv applied. A value of
// absent deletes the key; a key "result.x" edits the status result.
func edit(t testing.TB, m proto.Message, kv ...any) []byte {
	t.Helper()
	require.Zero(t, len(kv)%2, "edit needs key/value pairs")
	obj := toMap(t, m)
	for i := 0; i < len(kv); i += 2 {
		key, v := kv[i].(string), kv[i+1]
		target := obj
		if sub, ok := strings.CutPrefix(key, "result."); ok {
			target = obj["result"].(map[string]any)
			key = sub
		}
		if v == absent {
			delete(target, key)
			continue
		}
		target[key] = v
	}
	b, err := json.Marshal(obj)
	require.NoError(t, err)
	return b
}

// swap returns b with the first old replaced by new, for payloads edit
// cannot write: a key twice, bytes that are not UTF-8 (json.Marshal would
// replace them), escapes.
func swap(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	require.True(t, bytes.Contains(b, []byte(old)), "%q not in %s", old, b)
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// nested is n opening brackets, a value, and n closing ones.
func nested(n int, open, value, end string) string {
	return strings.Repeat(open, n) + value + strings.Repeat(end, n)
}

// requireFieldError checks that err wraps want, names field and has the
// matching Reason code.
func requireFieldError(t testing.TB, err, want error, field string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, want)
	var fe *proto.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, field, fe.Field, "field of %v", err)
	require.Equal(t, reasons[want], proto.Reason(err))
	for other := range reasons {
		if other != want {
			require.NotErrorIs(t, err, other, "an error wraps exactly one sentinel")
		}
	}
}

// indent returns b pretty-printed, with JSON whitespace around every token.
func indent(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, json.Indent(&out, b, " \r\n", "\t "))
	return bytes.ReplaceAll(out.Bytes(), []byte(`":`), []byte(`" :`))
}

type decodeCase struct {
	name    string
	payload []byte
	want    error // nil: the payload is valid
	field   string
}

func runDecodeCases(t *testing.T, decode func([]byte) (proto.Message, error), cases []decodeCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decode(tt.payload)
			if tt.want == nil {
				require.NoError(t, err)
				require.NoError(t, m.Validate())
				return
			}
			requireFieldError(t, err, tt.want, tt.field)
		})
	}
}

// commonCases are the error classes every message shares: framing, the
// header and the size cap.
func commonCases(t *testing.T, m proto.Message) []decodeCase {
	valid := edit(t, m)
	padded := append(append([]byte{}, valid...), bytes.Repeat([]byte(" "), proto.DefaultMaxPayload-len(valid))...)
	return []decodeCase{
		{name: "valid", payload: valid},
		{name: "surrounding whitespace", payload: []byte("\n\t " + string(valid) + " \r\n")},
		{name: "padded to the cap", payload: padded},
		{name: "indented", payload: indent(t, valid)},

		{name: "over the cap", payload: append(padded, ' '), want: proto.ErrTooLarge},
		{name: "huge", payload: bytes.Repeat([]byte("{"), proto.DefaultMaxPayload*2), want: proto.ErrTooLarge},

		{name: "empty", payload: nil, want: proto.ErrMalformed},
		{name: "whitespace", payload: []byte("  \n"), want: proto.ErrMalformed},
		{name: "not json", payload: []byte("hello"), want: proto.ErrMalformed},
		{name: "array", payload: []byte(`[` + string(valid) + `]`), want: proto.ErrMalformed},
		{name: "string", payload: []byte(`"{}"`), want: proto.ErrMalformed},
		{name: "null", payload: []byte(`null`), want: proto.ErrMalformed},
		{name: "number", payload: []byte(`1`), want: proto.ErrMalformed},
		{name: "truncated", payload: valid[:len(valid)-1], want: proto.ErrMalformed},
		{name: "open brace", payload: []byte(`{`), want: proto.ErrMalformed},
		{name: "syntax error", payload: []byte(`{"v":1,}`), want: proto.ErrMalformed},
		{name: "single quotes", payload: []byte(`{'v':1}`), want: proto.ErrMalformed},
		{name: "trailing object", payload: []byte(string(valid) + `{}`), want: proto.ErrMalformed},
		{name: "trailing brace", payload: []byte(string(valid) + `}`), want: proto.ErrMalformed},
		{name: "trailing garbage", payload: []byte(string(valid) + ` x`), want: proto.ErrMalformed},
		{name: "two messages", payload: []byte(string(valid) + "\n" + string(valid)), want: proto.ErrMalformed},

		{name: "empty object", payload: []byte(`{}`), want: proto.ErrMissingField, field: "v"},
		{name: "missing v", payload: edit(t, m, "v", absent), want: proto.ErrMissingField, field: "v"},
		{name: "v zero", payload: edit(t, m, "v", 0), want: proto.ErrMissingField, field: "v"},
		{name: "v null", payload: edit(t, m, "v", nil), want: proto.ErrMissingField, field: "v"},
		{name: "v 2", payload: edit(t, m, "v", 2), want: proto.ErrVersion, field: "v"},
		{name: "v negative", payload: edit(t, m, "v", -1), want: proto.ErrVersion, field: "v"},
		{name: "v string", payload: edit(t, m, "v", "1"), want: proto.ErrWrongType, field: "v"},
		{name: "v float", payload: edit(t, m, "v", raw(`1.0`)), want: proto.ErrWrongType, field: "v"},

		{name: "missing device_id", payload: edit(t, m, "device_id", absent), want: proto.ErrMissingField, field: "device_id"},
		{name: "empty device_id", payload: edit(t, m, "device_id", ""), want: proto.ErrMissingField, field: "device_id"},
		{name: "device_id number", payload: edit(t, m, "device_id", 7), want: proto.ErrWrongType, field: "device_id"},
		{name: "device_id with slash", payload: edit(t, m, "device_id", "a/b"), want: proto.ErrOutOfRange, field: "device_id"},
		{name: "device_id wildcard", payload: edit(t, m, "device_id", "+"), want: proto.ErrOutOfRange, field: "device_id"},
		{name: "device_id too long", payload: edit(t, m, "device_id", strings.Repeat("d", proto.MaxIDLen+1)), want: proto.ErrOutOfRange, field: "device_id"},
		{name: "device_id non-ascii", payload: edit(t, m, "device_id", "dév"), want: proto.ErrOutOfRange, field: "device_id"},

		{name: "missing ts", payload: edit(t, m, "ts", absent), want: proto.ErrMissingField, field: "ts"},
		{name: "ts number", payload: edit(t, m, "ts", 1714557600123), want: proto.ErrWrongType, field: "ts"},
		{name: "ts object", payload: edit(t, m, "ts", raw(`{}`)), want: proto.ErrWrongType, field: "ts"},
		{name: "ts not rfc3339", payload: edit(t, m, "ts", "2024-05-01 10:00:00"), want: proto.ErrWrongType, field: "ts"},
		{name: "ts date only", payload: edit(t, m, "ts", "2024-05-01"), want: proto.ErrWrongType, field: "ts"},
		// A ts on the wire is never missing, whatever its value: time.Time's
		// zero is a time out of range like any other.
		{name: "ts zero time", payload: edit(t, m, "ts", "0001-01-01T00:00:00Z"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts zero time by offset", payload: edit(t, m, "ts", "0001-01-01T01:00:00+01:00"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts zero time under a millisecond", payload: edit(t, m, "ts", "0001-01-01T00:00:00.0009Z"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts before year 0 in UTC", payload: edit(t, m, "ts", "0000-01-01T00:30:00+01:00"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts after year 9999 in UTC", payload: edit(t, m, "ts", "9999-12-31T23:30:00-01:00"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts last of year 9999", payload: edit(t, m, "ts", "9999-12-31T23:59:59.999Z"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts first ms before MinTS", payload: edit(t, m, "ts", "1899-12-31T23:59:59.999Z"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts MinTS", payload: edit(t, m, "ts", "1900-01-01T00:00:00.000Z")},
		{name: "ts MinTS by offset", payload: edit(t, m, "ts", "1900-01-01T01:00:00.000+01:00")},
		{name: "ts before MinTS by offset", payload: edit(t, m, "ts", "1900-01-01T00:30:00.000+01:00"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts MaxTS", payload: edit(t, m, "ts", "2262-04-11T23:47:16.854Z")},
		{name: "ts MaxTS with its nanoseconds", payload: edit(t, m, "ts", "2262-04-11T23:47:16.854775807Z")},
		{name: "ts first ms after MaxTS", payload: edit(t, m, "ts", "2262-04-11T23:47:16.855Z"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts last of DateTime64", payload: edit(t, m, "ts", "2299-12-31T23:59:59.999Z"), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts out of range and seq zero", payload: edit(t, m, "ts", "2300-01-01T00:00:00.000Z", "seq", 0), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "v 2 before ts out of range", payload: edit(t, m, "ts", "0001-01-01T00:00:00Z", "v", 2), want: proto.ErrVersion, field: "v"},

		{name: "missing seq", payload: edit(t, m, "seq", absent), want: proto.ErrMissingField, field: "seq"},
		{name: "seq zero", payload: edit(t, m, "seq", 0), want: proto.ErrMissingField, field: "seq"},
		{name: "seq negative", payload: edit(t, m, "seq", -1), want: proto.ErrWrongType, field: "seq"},
		{name: "seq string", payload: edit(t, m, "seq", "7"), want: proto.ErrWrongType, field: "seq"},
		{name: "seq fraction", payload: edit(t, m, "seq", 1.5), want: proto.ErrWrongType, field: "seq"},
		{name: "seq overflow", payload: edit(t, m, "seq", raw(`18446744073709551616`)), want: proto.ErrWrongType, field: "seq"},
		{name: "seq max", payload: edit(t, m, "seq", raw(`18446744073709551615`))},

		{name: "unknown field", payload: edit(t, m, "extra", 1), want: proto.ErrUnknownField, field: "extra"},
		{name: "unknown null field", payload: edit(t, m, "note", nil), want: proto.ErrUnknownField, field: "note"},

		// Keys match exactly: encoding/json alone would fold case (and
		// Unicode: "ſ" is "s"), letting a second device_id in.
		{name: "device_id twice in two cases", payload: edit(t, m, "DEVICE_ID", "dev-2"), want: proto.ErrUnknownField, field: "DEVICE_ID"},
		{name: "seq with long s", payload: edit(t, m, "seq", absent, "ſeq", 7), want: proto.ErrUnknownField, field: "ſeq"},
		{name: "key with escapes", payload: bytes.Replace(valid, []byte(`"v":`), []byte(`"\u0076":`), 1)},
		{name: "unknown key with escapes", payload: bytes.Replace(valid, []byte(`"v":`), []byte(`"\u0056":`), 1), want: proto.ErrUnknownField, field: "V"},
		{name: "no-break space before", payload: []byte("\u00a0" + string(valid)), want: proto.ErrMalformed},
		{name: "no-break space after", payload: []byte(string(valid) + "\u00a0"), want: proto.ErrMalformed},
		{name: "unknown field then syntax error", payload: []byte(`{"extra":1,}`), want: proto.ErrMalformed},

		// Each key once: encoding/json would keep the last of two, other
		// JSON readers the first.
		{name: "device_id twice", payload: swap(t, valid, `{`, `{"device_id":"dev-2",`), want: proto.ErrDuplicateKey, field: "device_id"},
		{name: "v twice with one value", payload: swap(t, valid, `{`, `{"v":1,`), want: proto.ErrDuplicateKey, field: "v"},
		{name: "v twice, once escaped", payload: swap(t, valid, `{`, `{"\u0076":1,`), want: proto.ErrDuplicateKey, field: "v"},
		{name: "v twice, the second null", payload: swap(t, valid, `"v":1}`, `"v":1,"v":null}`), want: proto.ErrDuplicateKey, field: "v"},
		{name: "duplicate before missing", payload: []byte(`{"v":1,"v":1}`), want: proto.ErrDuplicateKey, field: "v"},
		{name: "unknown key twice", payload: swap(t, valid, `{`, `{"x":1,"x":1,`), want: proto.ErrUnknownField, field: "x"},
		{name: "duplicate then syntax error", payload: []byte(`{"v":1,"v":1,}`), want: proto.ErrMalformed},

		// Strings are UTF-8: encoding/json would store U+FFFD for each byte
		// that is not, and for each half of a surrogate pair.
		{name: "device_id not UTF-8", payload: swap(t, valid, `"dev-1"`, "\"dev-\xff1\""), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id truncated sequence", payload: swap(t, valid, `"dev-1"`, "\"dev-1\xc3\""), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id overlong encoding", payload: swap(t, valid, `"dev-1"`, "\"dev-\xc0\xaf1\""), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id surrogate in UTF-8", payload: swap(t, valid, `"dev-1"`, "\"dev-\xed\xa0\x801\""), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id lone high surrogate", payload: swap(t, valid, `"dev-1"`, `"dev-\ud800"`), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id lone low surrogate", payload: swap(t, valid, `"dev-1"`, `"dev-\uDC00"`), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id surrogates reversed", payload: swap(t, valid, `"dev-1"`, `"dev-\udc00\ud800"`), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id high surrogate then letter", payload: swap(t, valid, `"dev-1"`, `"dev-\ud800\u0041"`), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "device_id high surrogate at the end", payload: swap(t, valid, `"dev-1"`, `"dev-1\ud83d"`), want: proto.ErrInvalidUTF8, field: "device_id"},
		// Valid Unicode that is not a valid ID is out of range, as before.
		{name: "device_id surrogate pair", payload: swap(t, valid, `"dev-1"`, `"dev-\ud83d\ude00"`), want: proto.ErrOutOfRange, field: "device_id"},
		{name: "device_id replacement character", payload: swap(t, valid, `"dev-1"`, `"dev-\ufffd"`), want: proto.ErrOutOfRange, field: "device_id"},
		{name: "device_id escaped backslash before u", payload: swap(t, valid, `"dev-1"`, `"dev-\\ud800"`), want: proto.ErrOutOfRange, field: "device_id"},
		{name: "key not UTF-8", payload: swap(t, valid, `{`, "{\"\xff\":1,"), want: proto.ErrInvalidUTF8},
		{name: "key lone surrogate", payload: swap(t, valid, `{`, `{"s\ud800q":1,`), want: proto.ErrInvalidUTF8},
		{name: "not UTF-8 nested in a value", payload: swap(t, valid, `"dev-1"`, "[\"\xff\"]"), want: proto.ErrInvalidUTF8, field: "device_id"},
		{name: "unknown key before its bad value", payload: swap(t, valid, `{`, "{\"x\":\"\xff\","), want: proto.ErrUnknownField, field: "x"},
		{name: "not UTF-8 outside a string", payload: swap(t, valid, `"v":1}`, "\"v\":1\xff}"), want: proto.ErrMalformed},
		{name: "not UTF-8 in a truncated string", payload: []byte("{\"v\":1,\"device_id\":\"\xff"), want: proto.ErrMalformed},

		// Nesting past MaxDepth is named as such, not by the missing fields
		// that follow it.
		{name: "value at MaxDepth", payload: swap(t, valid, `"dev-1"`, nested(proto.MaxDepth-1, "[", "1", "]")), want: proto.ErrWrongType, field: "device_id"},
		{name: "value past MaxDepth", payload: swap(t, valid, `"dev-1"`, nested(proto.MaxDepth, "[", "1", "]")), want: proto.ErrTooDeep, field: "device_id"},
		{name: "objects past MaxDepth", payload: swap(t, valid, `"dev-1"`, nested(proto.MaxDepth, `{"a":`, "1", "}")), want: proto.ErrTooDeep, field: "device_id"},
		{name: "deep value before missing fields", payload: []byte(`{"v":1,"seq":` + nested(8000, "[", "", "]") + `}`), want: proto.ErrTooDeep, field: "seq"},
		{name: "deep value in an unknown key", payload: []byte(`{"v":1,"x":` + nested(8000, "[", "", "]") + `}`), want: proto.ErrUnknownField, field: "x"},
		{name: "deep value never closed", payload: []byte(`{"v":1,"seq":` + strings.Repeat("[", 8000)), want: proto.ErrMalformed},
		{name: "null then syntax error", payload: []byte(`{"v":null`), want: proto.ErrMalformed},
	}
}

// presenceCases are the rejections of the presence pass for the fields of
// m: each required field missing, null, or spelled in another case; each
// optional field null or in another case. A key "result.x" is in the status
// result.
func presenceCases(t *testing.T, m proto.Message, required, optional []string) []decodeCase {
	var cases []decodeCase
	wrongCase := func(key string) string {
		prefix, name, nested := strings.Cut(key, ".")
		if !nested {
			return strings.ToUpper(key)
		}
		return prefix + "." + strings.ToUpper(name)
	}
	for _, f := range required {
		cases = append(cases,
			decodeCase{name: "missing " + f, payload: edit(t, m, f, absent), want: proto.ErrMissingField, field: f},
			decodeCase{name: "null " + f, payload: edit(t, m, f, nil), want: proto.ErrMissingField, field: f},
		)
	}
	for _, f := range optional {
		cases = append(cases,
			decodeCase{name: "absent " + f, payload: edit(t, m, f, absent)},
			decodeCase{name: "null " + f, payload: edit(t, m, f, nil), want: proto.ErrMissingField, field: f},
		)
	}
	for _, f := range append(append([]string{}, required...), optional...) {
		obj := toMap(t, m)
		target := obj
		if _, ok := obj[f]; !ok {
			target = obj["result"].(map[string]any)
		}
		_, name, _ := strings.Cut(f, ".")
		if name == "" {
			name = f
		}
		v := target[name]
		cases = append(cases,
			decodeCase{name: "wrong case " + f, payload: edit(t, m, f, absent, wrongCase(f), v), want: proto.ErrUnknownField, field: wrongCase(f)},
			decodeCase{name: "wrong case duplicate " + f, payload: edit(t, m, wrongCase(f), v), want: proto.ErrUnknownField, field: wrongCase(f)},
		)
	}
	return cases
}

// headerFields are the required fields of every message.
var headerFields = []string{"v", "device_id", "ts", "seq"}

func TestDecodePresence(t *testing.T) {
	withHeader := func(fields ...string) []string { return append(append([]string{}, headerFields...), fields...) }
	status := statusFixture()
	tests := []struct {
		name     string
		m        proto.Message
		decode   func([]byte) (proto.Message, error)
		required []string
		optional []string
	}{
		{
			name: "telemetry", m: telemetryFixture(), decode: kinds[0].decode,
			required: withHeader("region", "firmware", "state", "battery_pct", "charging", "rssi_dbm", "temperature_c", "uptime_s"),
			optional: []string{"battery_mv", "battery_cycles", "hw_model", "storage", "boot_count"},
		},
		{
			name: "status", m: status, decode: kinds[1].decode,
			required: withHeader("region", "state", "firmware", "result.command_id", "result.action", "result.outcome"),
			optional: []string{"target_firmware", "detail", "result"},
		},
		{
			name: "command", m: commandFixture(), decode: kinds[2].decode,
			required: withHeader("command_id", "action"),
			optional: []string{"target_firmware", "reason"},
		},
		{
			name: "decision", m: decisionFixture(), decode: kinds[3].decode,
			required: withHeader("region", "action", "reason", "state", "battery_pct", "charging", "rssi_dbm", "attempt"),
			optional: []string{"command_id", "firmware"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runDecodeCases(t, tt.decode, presenceCases(t, tt.m, tt.required, tt.optional))
		})
	}
}

func TestDecodeCommon(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			runDecodeCases(t, k.decode, commonCases(t, k.fixture()))
		})
	}
}

func TestDecodeTelemetry(t *testing.T) {
	m := telemetryFixture()
	runDecodeCases(t, func(b []byte) (proto.Message, error) { return proto.DecodeTelemetry(b) }, []decodeCase{
		{name: "battery 0", payload: edit(t, m, "battery_pct", 0)},
		{name: "battery 100", payload: edit(t, m, "battery_pct", 100)},
		{name: "rssi bounds low", payload: edit(t, m, "rssi_dbm", proto.MinRSSI)},
		{name: "rssi bounds high", payload: edit(t, m, "rssi_dbm", proto.MaxRSSI)},
		{name: "temperature low", payload: edit(t, m, "temperature_c", proto.MinTemperature)},
		{name: "temperature high", payload: edit(t, m, "temperature_c", proto.MaxTemperature)},
		{name: "failed state", payload: edit(t, m, "state", "partial")},

		{name: "battery string", payload: edit(t, m, "battery_pct", "87"), want: proto.ErrWrongType, field: "battery_pct"},
		{name: "battery bool", payload: edit(t, m, "battery_pct", true), want: proto.ErrWrongType, field: "battery_pct"},
		{name: "battery 101", payload: edit(t, m, "battery_pct", 101), want: proto.ErrOutOfRange, field: "battery_pct"},
		{name: "battery 100.01", payload: edit(t, m, "battery_pct", 100.01), want: proto.ErrOutOfRange, field: "battery_pct"},
		{name: "battery -1", payload: edit(t, m, "battery_pct", -1), want: proto.ErrOutOfRange, field: "battery_pct"},
		{name: "battery overflow", payload: edit(t, m, "battery_pct", raw(`1e400`)), want: proto.ErrWrongType, field: "battery_pct"},
		{name: "rssi 1", payload: edit(t, m, "rssi_dbm", 1), want: proto.ErrOutOfRange, field: "rssi_dbm"},
		{name: "rssi -141", payload: edit(t, m, "rssi_dbm", -141), want: proto.ErrOutOfRange, field: "rssi_dbm"},
		{name: "rssi fraction", payload: edit(t, m, "rssi_dbm", -70.5), want: proto.ErrWrongType, field: "rssi_dbm"},
		{name: "rssi string", payload: edit(t, m, "rssi_dbm", "-70"), want: proto.ErrWrongType, field: "rssi_dbm"},
		{name: "temperature 151", payload: edit(t, m, "temperature_c", 151), want: proto.ErrOutOfRange, field: "temperature_c"},
		{name: "temperature -61", payload: edit(t, m, "temperature_c", -61), want: proto.ErrOutOfRange, field: "temperature_c"},
		{name: "temperature string", payload: edit(t, m, "temperature_c", "hot"), want: proto.ErrWrongType, field: "temperature_c"},
		{name: "uptime negative", payload: edit(t, m, "uptime_s", -1), want: proto.ErrOutOfRange, field: "uptime_s"},
		{name: "charging string", payload: edit(t, m, "charging", "yes"), want: proto.ErrWrongType, field: "charging"},
		{name: "charging number", payload: edit(t, m, "charging", 1), want: proto.ErrWrongType, field: "charging"},

		{name: "unknown state", payload: edit(t, m, "state", "exploded"), want: proto.ErrUnknownState, field: "state"},
		{name: "state case", payload: edit(t, m, "state", "IDLE"), want: proto.ErrUnknownState, field: "state"},
		{name: "missing state", payload: edit(t, m, "state", absent), want: proto.ErrMissingField, field: "state"},
		{name: "state number", payload: edit(t, m, "state", 3), want: proto.ErrWrongType, field: "state"},

		{name: "missing region", payload: edit(t, m, "region", absent), want: proto.ErrMissingField, field: "region"},
		{name: "bad region", payload: edit(t, m, "region", "eu west"), want: proto.ErrOutOfRange, field: "region"},
		{name: "region number", payload: edit(t, m, "region", 7), want: proto.ErrWrongType, field: "region"},

		{name: "missing firmware", payload: edit(t, m, "firmware", absent), want: proto.ErrMissingField, field: "firmware"},
		{name: "firmware newline", payload: edit(t, m, "firmware", "2.4\n1"), want: proto.ErrOutOfRange, field: "firmware"},
		{name: "firmware nul", payload: edit(t, m, "firmware", "2.4\x001"), want: proto.ErrOutOfRange, field: "firmware"},
		{name: "firmware too long", payload: edit(t, m, "firmware", strings.Repeat("1", 257)), want: proto.ErrOutOfRange, field: "firmware"},
		{name: "status field", payload: edit(t, m, "target_firmware", "2.4.2"), want: proto.ErrUnknownField, field: "target_firmware"},
		{name: "firmware not UTF-8", payload: swap(t, edit(t, m), `"2.4.1"`, "\"2.4.1\xff\""), want: proto.ErrInvalidUTF8, field: "firmware"},
		{name: "firmware lone surrogate", payload: swap(t, edit(t, m), `"2.4.1"`, `"2.4.1\udfff"`), want: proto.ErrInvalidUTF8, field: "firmware"},
		{name: "state twice", payload: swap(t, edit(t, m), `"state":"installing"`, `"state":"installing","state":"idle"`), want: proto.ErrDuplicateKey, field: "state"},

		// The optional device-physics fields: absent or zero is unknown,
		// anything else is range-checked.
		{name: "v1 reading without physics fields", payload: edit(t, v1Telemetry())},
		{name: "battery_mv 0 is unknown", payload: edit(t, m, "battery_mv", 0)},
		{name: "battery_mv 1", payload: edit(t, m, "battery_mv", 1)},
		{name: "battery_mv max", payload: edit(t, m, "battery_mv", proto.MaxBatteryMV)},
		{name: "battery_mv over max", payload: edit(t, m, "battery_mv", proto.MaxBatteryMV+1), want: proto.ErrOutOfRange, field: "battery_mv"},
		{name: "battery_mv adc error code", payload: edit(t, m, "battery_mv", 65535), want: proto.ErrOutOfRange, field: "battery_mv"},
		{name: "battery_mv negative", payload: edit(t, m, "battery_mv", -1), want: proto.ErrOutOfRange, field: "battery_mv"},
		{name: "battery_mv volts as a fraction", payload: edit(t, m, "battery_mv", 3.912), want: proto.ErrWrongType, field: "battery_mv"},
		{name: "battery_mv string", payload: edit(t, m, "battery_mv", "3912"), want: proto.ErrWrongType, field: "battery_mv"},
		{name: "battery_cycles 0", payload: edit(t, m, "battery_cycles", 0)},
		{name: "battery_cycles max", payload: edit(t, m, "battery_cycles", proto.MaxBatteryCycles)},
		{name: "battery_cycles over max", payload: edit(t, m, "battery_cycles", proto.MaxBatteryCycles+1), want: proto.ErrOutOfRange, field: "battery_cycles"},
		{name: "battery_cycles negative", payload: edit(t, m, "battery_cycles", -3), want: proto.ErrOutOfRange, field: "battery_cycles"},
		{name: "battery_cycles fraction", payload: edit(t, m, "battery_cycles", 2.5), want: proto.ErrWrongType, field: "battery_cycles"},
		{name: "boot_count max", payload: edit(t, m, "boot_count", int64(proto.MaxBootCount))},
		{name: "boot_count over max", payload: edit(t, m, "boot_count", int64(proto.MaxBootCount)+1), want: proto.ErrOutOfRange, field: "boot_count"},
		{name: "boot_count negative", payload: edit(t, m, "boot_count", -1), want: proto.ErrOutOfRange, field: "boot_count"},
		{name: "boot_count bool", payload: edit(t, m, "boot_count", true), want: proto.ErrWrongType, field: "boot_count"},
		{name: "hw_model empty is unknown", payload: edit(t, m, "hw_model", "")},
		{name: "hw_model newline", payload: edit(t, m, "hw_model", "t1\nx"), want: proto.ErrOutOfRange, field: "hw_model"},
		{name: "hw_model too long", payload: edit(t, m, "hw_model", strings.Repeat("m", 257)), want: proto.ErrOutOfRange, field: "hw_model"},
		{name: "hw_model number", payload: edit(t, m, "hw_model", 1), want: proto.ErrWrongType, field: "hw_model"},
		{name: "storage ab", payload: edit(t, m, "storage", "ab")},
		{name: "storage single", payload: edit(t, m, "storage", "single")},
		{name: "storage empty is unknown", payload: edit(t, m, "storage", "")},
		{name: "storage unknown", payload: edit(t, m, "storage", "dual"), want: proto.ErrUnknownState, field: "storage"},
		{name: "storage case", payload: edit(t, m, "storage", "AB"), want: proto.ErrUnknownState, field: "storage"},
		{name: "storage bool", payload: edit(t, m, "storage", true), want: proto.ErrWrongType, field: "storage"},
		{name: "storage twice", payload: swap(t, edit(t, m), `"storage":"single"`, `"storage":"single","storage":"ab"`), want: proto.ErrDuplicateKey, field: "storage"},
	})
}

// TestDecodeV1TelemetryUnchanged: a reading from firmware without the
// device-physics fields decodes to the same message it always did, and
// encodes back without them, so old consumers of re-encoded messages see
// the v1 shape.
func TestDecodeV1TelemetryUnchanged(t *testing.T) {
	old := []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:00.123Z","seq":7,"region":"eu-west","firmware":"2.4.1","state":"installing","battery_pct":87.5,"charging":true,"rssi_dbm":-71,"temperature_c":41.25,"uptime_s":3600}`)
	for name, decode := range map[string]func([]byte) (*proto.Telemetry, error){
		"fast": proto.DecodeTelemetry, "reference": proto.DecodeTelemetryReference,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decode(old)
			require.NoError(t, err)
			require.Equal(t, v1Telemetry(), got)
			b, err := proto.Encode(got)
			require.NoError(t, err)
			require.JSONEq(t, string(old), string(b))
		})
	}
}

// TestDecodeUnicodeKept checks that valid text, escaped or not, decodes to
// what was sent, U+FFFD included when the device sent it.
func TestDecodeUnicodeKept(t *testing.T) {
	for _, tt := range []struct {
		name, detail, want string
	}{
		{name: "surrogate pair", detail: `\ud83d\ude00`, want: "\U0001F600"},
		{name: "surrogate pair upper case", detail: `\uD83D\uDE00`, want: "\U0001F600"},
		{name: "raw UTF-8", detail: "\U0001F600 ß", want: "\U0001F600 ß"},
		{name: "replacement character escaped", detail: `\ufffd`, want: "\uFFFD"},
		{name: "replacement character raw", detail: "\uFFFD", want: "\uFFFD"},
		{name: "escaped backslash then u", detail: `\\ud800`, want: `\ud800`},
		{name: "BMP escape", detail: `\u00df`, want: "ß"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := swap(t, edit(t, statusFixture()), `"E_PART_B: partition b short write"`, `"`+tt.detail+`"`)
			for name, decode := range map[string]func([]byte) (*proto.StatusEvent, error){"fast": proto.DecodeStatus, "reference": proto.DecodeStatusReference} {
				m, err := decode(b)
				require.NoError(t, err, name)
				require.Equal(t, tt.want, m.Detail, name)
			}
		})
	}
}

func TestDecodeStatus(t *testing.T) {
	m := statusFixture()
	runDecodeCases(t, func(b []byte) (proto.Message, error) { return proto.DecodeStatus(b) }, []decodeCase{
		{name: "no result", payload: edit(t, m, "result", absent)},
		{name: "null result", payload: edit(t, m, "result", nil), want: proto.ErrMissingField, field: "result"},
		{name: "offline without firmware", payload: edit(t, m, "state", "offline", "firmware", absent, "result", absent)},
		{name: "offline with null firmware", payload: edit(t, m, "state", "offline", "firmware", nil, "result", absent), want: proto.ErrMissingField, field: "firmware"},
		{name: "offline with empty firmware", payload: edit(t, m, "state", "offline", "firmware", "", "result", absent)},
		{name: "minimal", payload: edit(t, m, "target_firmware", absent, "detail", absent, "result", absent)},
		{name: "detail with JSON punctuation", payload: edit(t, m, "detail", `a "b": null, {"c":[1]} \\`)},
		{name: "result indented", payload: indent(t, edit(t, m, "result.command_id", `c"}, "x": null`))},

		{name: "unknown state", payload: edit(t, m, "state", "half_done"), want: proto.ErrUnknownState, field: "state"},
		{name: "missing state", payload: edit(t, m, "state", absent), want: proto.ErrMissingField, field: "state"},
		{name: "missing firmware", payload: edit(t, m, "firmware", absent), want: proto.ErrMissingField, field: "firmware"},
		{name: "missing region", payload: edit(t, m, "region", absent), want: proto.ErrMissingField, field: "region"},
		{name: "target_firmware newline", payload: edit(t, m, "target_firmware", "a\nb"), want: proto.ErrOutOfRange, field: "target_firmware"},
		{name: "detail too long", payload: edit(t, m, "detail", strings.Repeat("x", 257)), want: proto.ErrOutOfRange, field: "detail"},
		{name: "detail carriage return", payload: edit(t, m, "detail", "x\ry"), want: proto.ErrOutOfRange, field: "detail"},
		{name: "detail number", payload: edit(t, m, "detail", 5), want: proto.ErrWrongType, field: "detail"},
		{name: "telemetry field", payload: edit(t, m, "battery_pct", 50), want: proto.ErrUnknownField, field: "battery_pct"},

		{name: "result string", payload: edit(t, m, "result", "ok"), want: proto.ErrWrongType, field: "result"},
		{name: "result array", payload: edit(t, m, "result", raw(`[]`)), want: proto.ErrWrongType, field: "result"},
		{name: "result empty", payload: edit(t, m, "result", raw(`{}`)), want: proto.ErrMissingField, field: "result.command_id"},
		{name: "result missing command_id", payload: edit(t, m, "result.command_id", absent), want: proto.ErrMissingField, field: "result.command_id"},
		{name: "result command_id newline", payload: edit(t, m, "result.command_id", "c\n1"), want: proto.ErrOutOfRange, field: "result.command_id"},
		{name: "result missing action", payload: edit(t, m, "result.action", absent), want: proto.ErrMissingField, field: "result.action"},
		{name: "result unknown action", payload: edit(t, m, "result.action", "reboot"), want: proto.ErrUnknownState, field: "result.action"},
		{name: "result missing outcome", payload: edit(t, m, "result.outcome", absent), want: proto.ErrMissingField, field: "result.outcome"},
		{name: "result unknown outcome", payload: edit(t, m, "result.outcome", "maybe"), want: proto.ErrUnknownState, field: "result.outcome"},
		{name: "result outcome number", payload: edit(t, m, "result.outcome", 1), want: proto.ErrWrongType, field: "result.outcome"},
		{name: "result action number", payload: edit(t, m, "result.action", 1), want: proto.ErrWrongType, field: "result.action"},
		{name: "result unknown field", payload: edit(t, m, "result.extra", 1), want: proto.ErrUnknownField, field: "result.extra"},
		{name: "result unknown null field", payload: edit(t, m, "result.extra", nil), want: proto.ErrUnknownField, field: "result.extra"},
		{name: "result header field", payload: edit(t, m, "result.seq", 1), want: proto.ErrUnknownField, field: "result.seq"},
		{name: "result field at top level", payload: edit(t, m, "outcome", "ok"), want: proto.ErrUnknownField, field: "outcome"},
		{name: "result null in array", payload: edit(t, m, "result", raw(`[null]`)), want: proto.ErrWrongType, field: "result"},

		{name: "result twice", payload: swap(t, edit(t, m), `"result":`, `"result":{"command_id":"c","action":"halt","outcome":"ok"},"result":`), want: proto.ErrDuplicateKey, field: "result"},
		{name: "result outcome twice", payload: swap(t, edit(t, m), `"outcome":"failed"`, `"outcome":"failed","outcome":"ok"`), want: proto.ErrDuplicateKey, field: "result.outcome"},
		{name: "result key not UTF-8", payload: swap(t, edit(t, m), `"outcome":`, "\"out\xffcome\":"), want: proto.ErrInvalidUTF8, field: "result"},
		{name: "result value not UTF-8", payload: swap(t, edit(t, m), `"cmd-42"`, "\"cmd-\xff\""), want: proto.ErrInvalidUTF8, field: "result.command_id"},
		{name: "result value at MaxDepth", payload: swap(t, edit(t, m), `"cmd-42"`, nested(proto.MaxDepth-2, "[", "", "]")), want: proto.ErrWrongType, field: "result.command_id"},
		{name: "result value past MaxDepth", payload: swap(t, edit(t, m), `"cmd-42"`, nested(proto.MaxDepth-1, "[", "", "]")), want: proto.ErrTooDeep, field: "result.command_id"},
		{name: "detail lone surrogate", payload: swap(t, edit(t, m), `"E_PART_B`, `"E_PART_B \ud800`), want: proto.ErrInvalidUTF8, field: "detail"},
		{name: "detail not UTF-8", payload: swap(t, edit(t, m), `"E_PART_B`, "\"E_PART_B \xfe"), want: proto.ErrInvalidUTF8, field: "detail"},
	})
}

func TestDecodeCommand(t *testing.T) {
	m := commandFixture()
	cases := []decodeCase{
		{name: "minimal", payload: edit(t, m, "target_firmware", absent, "reason", absent)},

		{name: "missing command_id", payload: edit(t, m, "command_id", absent), want: proto.ErrMissingField, field: "command_id"},
		{name: "command_id too long", payload: edit(t, m, "command_id", strings.Repeat("c", 257)), want: proto.ErrOutOfRange, field: "command_id"},
		{name: "command_id number", payload: edit(t, m, "command_id", 42), want: proto.ErrWrongType, field: "command_id"},
		{name: "missing action", payload: edit(t, m, "action", absent), want: proto.ErrMissingField, field: "action"},
		{name: "unknown action", payload: edit(t, m, "action", "reboot"), want: proto.ErrUnknownState, field: "action"},
		{name: "action none", payload: edit(t, m, "action", "none"), want: proto.ErrUnknownState, field: "action"},
		{name: "target_firmware nul", payload: edit(t, m, "target_firmware", "\x00"), want: proto.ErrOutOfRange, field: "target_firmware"},
		{name: "reason carriage return", payload: edit(t, m, "reason", "a\rb"), want: proto.ErrOutOfRange, field: "reason"},
		{name: "region is not a command field", payload: edit(t, m, "region", "eu-west"), want: proto.ErrUnknownField, field: "region"},
	}
	for _, a := range []proto.Action{proto.ActionRetry, proto.ActionRollback, proto.ActionDefer, proto.ActionHalt} {
		cases = append(cases, decodeCase{name: "action " + string(a), payload: edit(t, m, "action", string(a))})
	}
	runDecodeCases(t, func(b []byte) (proto.Message, error) { return proto.DecodeCommand(b) }, cases)
}

func TestDecodeDecision(t *testing.T) {
	m := decisionFixture()
	runDecodeCases(t, func(b []byte) (proto.Message, error) { return proto.DecodeDecision(b) }, []decodeCase{
		{name: "action none without command", payload: edit(t, m, "action", "none", "command_id", absent)},
		{name: "battery unknown", payload: edit(t, m, "battery_pct", -1)},
		{name: "rssi unknown", payload: edit(t, m, "rssi_dbm", 0)},
		{name: "no firmware", payload: edit(t, m, "firmware", absent)},

		{name: "missing region", payload: edit(t, m, "region", absent), want: proto.ErrMissingField, field: "region"},
		{name: "missing action", payload: edit(t, m, "action", absent), want: proto.ErrMissingField, field: "action"},
		{name: "unknown action", payload: edit(t, m, "action", "reboot"), want: proto.ErrUnknownState, field: "action"},
		{name: "missing reason", payload: edit(t, m, "reason", absent), want: proto.ErrMissingField, field: "reason"},
		{name: "reason newline", payload: edit(t, m, "reason", "a\nb"), want: proto.ErrOutOfRange, field: "reason"},
		{name: "command_id too long", payload: edit(t, m, "command_id", strings.Repeat("c", 257)), want: proto.ErrOutOfRange, field: "command_id"},
		{name: "missing state", payload: edit(t, m, "state", absent), want: proto.ErrMissingField, field: "state"},
		{name: "unknown state", payload: edit(t, m, "state", "sleepy"), want: proto.ErrUnknownState, field: "state"},
		{name: "battery -2", payload: edit(t, m, "battery_pct", -2), want: proto.ErrOutOfRange, field: "battery_pct"},
		{name: "battery 101", payload: edit(t, m, "battery_pct", 101), want: proto.ErrOutOfRange, field: "battery_pct"},
		{name: "battery string", payload: edit(t, m, "battery_pct", "12"), want: proto.ErrWrongType, field: "battery_pct"},
		{name: "rssi 1", payload: edit(t, m, "rssi_dbm", 1), want: proto.ErrOutOfRange, field: "rssi_dbm"},
		{name: "rssi -141", payload: edit(t, m, "rssi_dbm", -141), want: proto.ErrOutOfRange, field: "rssi_dbm"},
		{name: "firmware newline", payload: edit(t, m, "firmware", "2.4\n0"), want: proto.ErrOutOfRange, field: "firmware"},
		{name: "attempt negative", payload: edit(t, m, "attempt", -1), want: proto.ErrOutOfRange, field: "attempt"},
		{name: "attempt string", payload: edit(t, m, "attempt", "1"), want: proto.ErrWrongType, field: "attempt"},
	})
}

func TestRoundTrip(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			want := k.fixture()
			b, err := proto.Encode(want)
			require.NoError(t, err)
			require.Contains(t, string(b), `"v":1`)
			require.Contains(t, string(b), `"ts":"2024-05-01T10:00:00.123Z"`)
			got, err := k.decode(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestRoundTripEveryValue(t *testing.T) {
	states := []proto.State{
		proto.StateIdle, proto.StateDownloading, proto.StateVerifying, proto.StateInstalling,
		proto.StateRebooting, proto.StateUpdated, proto.StateDownloadFailed, proto.StateVerifyFailed,
		proto.StateInstallFailed, proto.StatePartial, proto.StateBootFailed, proto.StateRollingBack,
		proto.StateRolledBack, proto.StateBricked, proto.StateOffline,
	}
	for _, s := range states {
		t.Run("state "+string(s), func(t *testing.T) {
			want := statusFixture()
			want.State = s
			b, err := proto.Encode(want)
			require.NoError(t, err)
			got, err := proto.DecodeStatus(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
	for _, o := range []proto.Outcome{proto.OutcomeOK, proto.OutcomeFailed, proto.OutcomeRejected, proto.OutcomeDuplicate} {
		t.Run("outcome "+string(o), func(t *testing.T) {
			want := statusFixture()
			want.Result.Outcome = o
			b, err := proto.Encode(want)
			require.NoError(t, err)
			got, err := proto.DecodeStatus(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
	for _, a := range []proto.Action{proto.ActionRetry, proto.ActionRollback, proto.ActionDefer, proto.ActionHalt, proto.ActionNone} {
		t.Run("decision "+string(a), func(t *testing.T) {
			want := decisionFixture()
			want.Action = a
			b, err := proto.Encode(want)
			require.NoError(t, err)
			got, err := proto.DecodeDecision(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	tests := []struct {
		name  string
		m     proto.Message
		want  error
		field string
	}{
		{name: "zero telemetry", m: &proto.Telemetry{}, want: proto.ErrMissingField, field: "v"},
		{name: "battery", m: func() proto.Message { m := telemetryFixture(); m.BatteryPct = 120; return m }(), want: proto.ErrOutOfRange, field: "battery_pct"},
		{name: "version", m: func() proto.Message { m := statusFixture(); m.V = 2; return m }(), want: proto.ErrVersion, field: "v"},
		{name: "outcome", m: func() proto.Message { m := statusFixture(); m.Result.Outcome = "meh"; return m }(), want: proto.ErrUnknownState, field: "result.outcome"},
		{name: "command none", m: func() proto.Message { m := commandFixture(); m.Action = proto.ActionNone; return m }(), want: proto.ErrUnknownState, field: "action"},
		{name: "decision attempt", m: func() proto.Message { m := decisionFixture(); m.Attempt = -3; return m }(), want: proto.ErrOutOfRange, field: "attempt"},
		{name: "ts year 10000", m: func() proto.Message {
			m := commandFixture()
			m.TS = proto.NewTime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
			return m
		}(), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts after MaxTS", m: func() proto.Message {
			m := telemetryFixture()
			m.TS = proto.NewTime(proto.MaxTS.Add(time.Millisecond))
			return m
		}(), want: proto.ErrTSOutOfRange, field: "ts"},
		{name: "ts before MinTS", m: func() proto.Message {
			m := statusFixture()
			m.TS = proto.NewTime(proto.MinTS.Add(-time.Millisecond))
			return m
		}(), want: proto.ErrTSOutOfRange, field: "ts"},
		// A producer that never set ts has a missing ts, not one out of range.
		{name: "ts never set", m: func() proto.Message { m := decisionFixture(); m.TS = proto.Time{}; return m }(), want: proto.ErrMissingField, field: "ts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := proto.Encode(tt.m)
			require.Nil(t, b)
			requireFieldError(t, err, tt.want, tt.field)
			require.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("encode %T: ", tt.m)), err.Error())
		})
	}
}

func TestDecode(t *testing.T) {
	tel, st, cmd := telemetryFixture(), statusFixture(), commandFixture()
	const region, device = "eu-west", "dev-1"
	tests := []struct {
		name    string
		topic   string
		payload []byte
		max     int
		want    proto.Message // nil: an error is expected
		err     error
		field   string
	}{
		{name: "telemetry", topic: proto.TelemetryTopic(region, device), payload: edit(t, tel), want: tel},
		{name: "status", topic: proto.StatusTopic(region, device), payload: edit(t, st), want: st},
		{name: "command", topic: proto.CommandTopic(region, device), payload: edit(t, cmd), want: cmd},
		{name: "max exactly the size", topic: proto.TelemetryTopic(region, device), payload: edit(t, tel), max: len(edit(t, tel)), want: tel},
		{name: "negative max means default", topic: proto.TelemetryTopic(region, device), payload: edit(t, tel), max: -1, want: tel},

		{name: "bad topic", topic: "fleet/eu-west/dev-1", payload: edit(t, tel), err: proto.ErrBadTopic},
		{name: "wildcard topic", topic: "fleet/+/+/telemetry", payload: edit(t, tel), err: proto.ErrBadTopic},
		{name: "recovery topic", topic: proto.RecoveryTopic(region, device), payload: edit(t, decisionFixture()), err: proto.ErrBadTopic},

		{name: "telemetry device mismatch", topic: proto.TelemetryTopic(region, "dev-2"), payload: edit(t, tel), err: proto.ErrTopicMismatch, field: "device_id"},
		{name: "status device mismatch", topic: proto.StatusTopic(region, "dev-2"), payload: edit(t, st), err: proto.ErrTopicMismatch, field: "device_id"},
		{name: "command device mismatch", topic: proto.CommandTopic(region, "DEV-1"), payload: edit(t, cmd), err: proto.ErrTopicMismatch, field: "device_id"},
		{name: "telemetry region mismatch", topic: proto.TelemetryTopic("us-east", device), payload: edit(t, tel), err: proto.ErrTopicMismatch, field: "region"},
		{name: "status region mismatch", topic: proto.StatusTopic("us-east", device), payload: edit(t, st), err: proto.ErrTopicMismatch, field: "region"},
		{name: "command ignores region", topic: proto.CommandTopic("us-east", device), payload: edit(t, cmd), want: cmd},

		{name: "over custom cap", topic: proto.TelemetryTopic(region, device), payload: edit(t, tel), max: 64, err: proto.ErrTooLarge},
		{name: "over default cap", topic: proto.TelemetryTopic(region, device), payload: bytes.Repeat([]byte(" "), proto.DefaultMaxPayload+1), err: proto.ErrTooLarge},
		{name: "telemetry on status topic", topic: proto.StatusTopic(region, device), payload: edit(t, v1Telemetry()), err: proto.ErrUnknownField, field: "battery_pct"},
		{name: "physics telemetry on status topic", topic: proto.StatusTopic(region, device), payload: edit(t, tel), err: proto.ErrUnknownField, field: "battery_cycles"},
		{name: "command on telemetry topic", topic: proto.TelemetryTopic(region, device), payload: edit(t, cmd), err: proto.ErrUnknownField, field: "action"},
		{name: "payload error", topic: proto.TelemetryTopic(region, device), payload: edit(t, tel, "rssi_dbm", 5), err: proto.ErrOutOfRange, field: "rssi_dbm"},
		{name: "malformed", topic: proto.StatusTopic(region, device), payload: []byte(`{"v":1`), err: proto.ErrMalformed},
		// Past encoding/json's own depth limit, under a cap that lets it in.
		{name: "deeper than encoding/json goes", topic: proto.TelemetryTopic(region, device), payload: []byte(`{"v":1,"seq":` + nested(10001, "[", "", "]") + `}`), max: 1 << 20, err: proto.ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic, m, err := proto.Decode(tt.topic, tt.payload, tt.max)
			if tt.want != nil {
				require.NoError(t, err)
				require.Equal(t, tt.want, m)
				require.Equal(t, tt.topic, topic.String())
				return
			}
			require.Nil(t, m)
			if errors.Is(tt.err, proto.ErrBadTopic) {
				require.ErrorIs(t, err, proto.ErrBadTopic)
				require.Equal(t, "bad_topic", proto.Reason(err))
				require.Equal(t, proto.Topic{}, topic)
				return
			}
			requireFieldError(t, err, tt.err, tt.field)
			// Payload errors still say where the message came from.
			require.Equal(t, tt.topic, topic.String())
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: "other"},
		{name: "unrelated", err: errors.New("boom"), want: "other"},
		{name: "field error without sentinel", err: &proto.FieldError{Field: "x", Err: errors.New("boom")}, want: "other"},
		{name: "wrapped field error", err: fmt.Errorf("ingest: %w", &proto.FieldError{Field: "seq", Err: proto.ErrWrongType}), want: "wrong_type"},
		{name: "wrapped topic error", err: fmt.Errorf("device in %q: %w", "t", fmt.Errorf("%w: empty identifier", proto.ErrBadTopic)), want: "bad_topic"},
	}
	for sentinel, code := range reasons {
		tests = append(tests,
			struct {
				name string
				err  error
				want string
			}{name: code, err: sentinel, want: code},
			struct {
				name string
				err  error
				want string
			}{name: code + " in field error", err: &proto.FieldError{Field: "f", Err: sentinel, Detail: "d"}, want: code},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, proto.Reason(tt.err))
		})
	}
}

// TestTSRange holds MinTS and MaxTS to what their comment says: MaxTS is
// the last millisecond whose time.UnixNano, what clickhouse-go converts a
// DateTime64 through, does not overflow, and both lie inside DateTime64's
// documented 1900-01-01..2299-12-31.
func TestTSRange(t *testing.T) {
	require.Equal(t, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), proto.MinTS)
	require.Equal(t, time.Date(2262, 4, 11, 23, 47, 16, 854_000_000, time.UTC), proto.MaxTS)
	for _, tt := range []struct {
		name string
		ts   time.Time
		fits bool
	}{
		{"MinTS", proto.MinTS, true},
		{"MaxTS", proto.MaxTS, true},
		{"after MaxTS", proto.MaxTS.Add(time.Millisecond), false},
		{"last of DateTime64", time.Date(2299, 12, 31, 23, 59, 59, 999_000_000, time.UTC), false},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// clickhouse-go's timeToInt64 at precision 3.
			require.Equal(t, tt.fits, tt.ts.UnixNano()/1e6 == tt.ts.UnixMilli())
		})
	}
	require.True(t, proto.MinTS.Year() >= 1900 && proto.MaxTS.Year() <= 2299)
}

func TestFieldErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *proto.FieldError
		want string
	}{
		{name: "bare", err: &proto.FieldError{Err: proto.ErrMalformed}, want: "proto: malformed JSON"},
		{name: "detail", err: &proto.FieldError{Err: proto.ErrTooLarge, Detail: "20000 bytes"}, want: "proto: payload too large: 20000 bytes"},
		{name: "field", err: &proto.FieldError{Field: "seq", Err: proto.ErrMissingField}, want: `proto: missing field: field "seq"`},
		{name: "field and detail", err: &proto.FieldError{Field: "rssi_dbm", Err: proto.ErrOutOfRange, Detail: "5 not in -140..0"}, want: `proto: out of range: field "rssi_dbm": 5 not in -140..0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.err.Error())
			require.Equal(t, tt.err.Err, errors.Unwrap(tt.err))
		})
	}
}

func TestTimeMarshal(t *testing.T) {
	cest := time.FixedZone("CEST", 2*60*60)
	tests := []struct {
		name string
		in   proto.Time
		want string
	}{
		{name: "utc ms", in: proto.NewTime(time.Date(2024, 5, 1, 10, 0, 0, 123_000_000, time.UTC)), want: `"2024-05-01T10:00:00.123Z"`},
		{name: "whole second keeps .000", in: proto.NewTime(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)), want: `"2024-05-01T10:00:00.000Z"`},
		{name: "offset converted to utc", in: proto.NewTime(time.Date(2024, 5, 1, 12, 0, 0, 5_000_000, cest)), want: `"2024-05-01T10:00:00.005Z"`},
		{name: "sub-ms truncated", in: proto.NewTime(time.Date(2024, 12, 31, 23, 59, 59, 999_999_999, time.UTC)), want: `"2024-12-31T23:59:59.999Z"`},
		{name: "unnormalized time", in: proto.Time{Time: time.Date(2024, 5, 1, 12, 0, 0, 456_789_000, cest)}, want: `"2024-05-01T10:00:00.456Z"`},
		{name: "year 0", in: proto.NewTime(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)), want: `"0000-01-01T00:00:00.000Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(b))
			var back proto.Time
			require.NoError(t, json.Unmarshal(b, &back))
			require.True(t, back.Equal(tt.in.Truncate(time.Millisecond)), "%v != %v", back, tt.in)
		})
	}
}

func TestNewTime(t *testing.T) {
	in := time.Date(2024, 5, 1, 12, 30, 15, 987_654_321, time.FixedZone("X", -5*60*60))
	got := proto.NewTime(in)
	require.Equal(t, time.UTC, got.Location())
	require.Equal(t, 987_000_000, got.Nanosecond())
	require.True(t, got.Equal(time.Date(2024, 5, 1, 17, 30, 15, 987_000_000, time.UTC)))
	require.False(t, got.After(in), "NewTime truncates, never rounds up")

	// The monotonic reading is dropped, so values compare with ==.
	now := proto.NewTime(time.Now())
	b, err := json.Marshal(now)
	require.NoError(t, err)
	var back proto.Time
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, now, back)
}

func TestTimeUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr bool
	}{
		{name: "wire format", in: `"2024-05-01T10:00:00.123Z"`, want: time.Date(2024, 5, 1, 10, 0, 0, 123_000_000, time.UTC)},
		{name: "no fraction", in: `"2024-05-01T10:00:00Z"`, want: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
		{name: "offset", in: `"2024-05-01T12:00:00.5+02:00"`, want: time.Date(2024, 5, 1, 10, 0, 0, 500_000_000, time.UTC)},
		{name: "sub-ms truncated to wire precision", in: `"2024-05-01T10:00:00.123999Z"`, want: time.Date(2024, 5, 1, 10, 0, 0, 123_000_000, time.UTC)},

		{name: "number", in: `1714557600`, wantErr: true},
		{name: "null", in: `null`, wantErr: true},
		{name: "empty string", in: `""`, wantErr: true},
		{name: "no zone", in: `"2024-05-01T10:00:00"`, wantErr: true},
		{name: "bad month", in: `"2024-13-01T10:00:00Z"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got proto.Time
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, proto.Time{Time: tt.want}, got)
		})
	}
}
