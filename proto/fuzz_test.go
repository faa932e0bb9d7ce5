package proto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// The seed corpus of every target lives in testdata/fuzz/<FuzzName>/ and
// runs in every plain `go test`: valid messages and one payload per error
// class. Fuzz a target with, for example,
//
//	go test -run='^$' -fuzz='^FuzzDecodeTelemetry$' -fuzztime=20s .

func FuzzDecodeTelemetry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { checkDecoder(t, b, proto.DecodeTelemetry) })
}

func FuzzDecodeStatus(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { checkDecoder(t, b, proto.DecodeStatus) })
}

func FuzzDecodeCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { checkDecoder(t, b, proto.DecodeCommand) })
}

func FuzzDecodeDecision(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { checkDecoder(t, b, proto.DecodeDecision) })
}

func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		top, m, err := proto.Decode(topic, payload, 0)
		if err != nil {
			require.Nil(t, m)
			require.NotEqual(t, "other", proto.Reason(err), "error wraps no sentinel: %v", err)
			requireMalformedIsSyntax(t, payload, err)
			return
		}
		require.Equal(t, topic, top.String())
		require.Equal(t, top.Device, messageDevice(m))
		switch top.Kind {
		case proto.KindTelemetry:
			require.IsType(t, &proto.Telemetry{}, m)
		case proto.KindStatus:
			require.IsType(t, &proto.StatusEvent{}, m)
		case proto.KindCommand:
			require.IsType(t, &proto.Command{}, m)
		}
		enc, err := proto.Encode(m)
		require.NoError(t, err)
		requireKeysFrom(t, payload, enc)
		requireStrictJSON(t, payload)
		top2, m2, err := proto.Decode(topic, enc, 0)
		require.NoError(t, err, "re-encoded: %s", enc)
		require.Equal(t, top, top2)
		require.Equal(t, m, m2)
	})
}

// checkDecoder holds the properties of every decoder: it never panics; an
// error is a *FieldError wrapping a sentinel, and a payload-wide malformed
// error means the payload really is not one JSON object; a decoded message
// came from a valid JSON object holding, exactly and not null, every key its
// encoding has, each key once, in valid UTF-8 and no U+FFFD the payload
// did not spell; it re-encodes and decodes again to an equal value, with a
// stable encoding.
func checkDecoder[M proto.Message](t *testing.T, b []byte, decode func([]byte) (M, error)) {
	t.Helper()
	m, err := decode(b)
	if err != nil {
		require.NotEqual(t, "other", proto.Reason(err), "error wraps no sentinel: %v", err)
		var fe *proto.FieldError
		require.ErrorAs(t, err, &fe)
		requireMalformedIsSyntax(t, b, err)
		return
	}
	enc, err := proto.Encode(m)
	require.NoError(t, err)
	requireKeysFrom(t, b, enc)
	requireStrictJSON(t, b)
	m2, err := decode(enc)
	require.NoError(t, err, "re-encoded: %s", enc)
	require.Equal(t, m, m2)
	enc2, err := proto.Encode(m2)
	require.NoError(t, err)
	require.Equal(t, string(enc), string(enc2))
}

func messageDevice(m proto.Message) string {
	switch v := m.(type) {
	case *proto.Telemetry:
		return v.DeviceID
	case *proto.StatusEvent:
		return v.DeviceID
	case *proto.Command:
		return v.DeviceID
	case *proto.Decision:
		return v.DeviceID
	}
	return ""
}

// isObject reports whether b is valid JSON whose value is an object.
func isObject(b []byte) bool {
	return json.Valid(b) && bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{"))
}

// requireMalformedIsSyntax checks that a decoder says a whole payload is
// malformed only when it is not one JSON object.
func requireMalformedIsSyntax(t *testing.T, b []byte, err error) {
	t.Helper()
	var fe *proto.FieldError
	if len(b) <= proto.DefaultMaxPayload && errors.As(err, &fe) && fe.Err == proto.ErrMalformed && fe.Field == "" {
		require.False(t, isObject(b), "valid JSON object reported malformed: %v", err)
	}
}

// requireKeysFrom checks that an accepted payload is a JSON object that
// holds every key of its encoding enc, spelled exactly and not null, so no
// value was made up from a missing, null or differently cased key (an empty
// string may be absent: the firmware of an offline device); and that
// every other key of the payload is an empty string (an optional field
// omitted from enc). It recurses into "result".
func requireKeysFrom(t *testing.T, payload, enc []byte) {
	t.Helper()
	require.True(t, isObject(payload), "accepted a payload that is not a JSON object")
	var in, out map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(payload, &in))
	require.NoError(t, json.Unmarshal(enc, &out))
	for k, v := range out {
		got, ok := in[k]
		if !ok && string(v) == `""` {
			continue // firmware of an offline device
		}
		require.True(t, ok, "key %q of %s not in accepted payload %q", k, enc, payload)
		require.NotEqual(t, "null", string(got), "key %q is null in accepted payload", k)
		if k == "result" {
			requireKeysFrom(t, got, v)
		}
	}
	for k, v := range in {
		if _, ok := out[k]; !ok {
			require.Equal(t, `""`, string(v), "key %q of accepted payload %q not in %s", k, payload, enc)
		}
	}
}

// requireStrictJSON checks that an accepted payload is valid UTF-8, has no
// object with a key twice, and decodes to no U+FFFD it did not spell, raw
// or escaped: encoding/json would have put one for a lone surrogate escape.
func requireStrictJSON(t *testing.T, b []byte) {
	t.Helper()
	require.True(t, utf8.Valid(b), "accepted a payload that is not UTF-8: %q", b)
	spelled := bytes.Contains(b, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(b), []byte(`\ufffd`))
	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	var open []*frame
	// valueDone records that the innermost object's value has been read.
	valueDone := func() {
		if n := len(open); n > 0 && open[n-1].object {
			open[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				open = append(open, &frame{object: true, wantKey: true, keys: map[string]bool{}})
			case '[':
				open = append(open, &frame{})
			default:
				open = open[:len(open)-1]
				valueDone()
			}
			continue
		case string:
			if !spelled {
				require.NotContains(t, v, "\uFFFD", "accepted a string with U+FFFD the payload did not spell: %q", b)
			}
			if f := open[len(open)-1]; f.object && f.wantKey {
				require.False(t, f.keys[v], "accepted key %q twice in %q", v, b)
				f.keys[v] = true
				f.wantKey = false
				continue
			}
		}
		valueDone()
	}
}
