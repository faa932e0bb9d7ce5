package proto_test

import (
	"testing"

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
		top2, m2, err := proto.Decode(topic, enc, 0)
		require.NoError(t, err, "re-encoded: %s", enc)
		require.Equal(t, top, top2)
		require.Equal(t, m, m2)
	})
}

// checkDecoder holds the properties of every decoder: it never panics; an
// error is a *FieldError wrapping a sentinel; a decoded message re-encodes
// and decodes again to an equal value, with a stable encoding.
func checkDecoder[M proto.Message](t *testing.T, b []byte, decode func([]byte) (M, error)) {
	t.Helper()
	m, err := decode(b)
	if err != nil {
		require.NotEqual(t, "other", proto.Reason(err), "error wraps no sentinel: %v", err)
		var fe *proto.FieldError
		require.ErrorAs(t, err, &fe)
		return
	}
	enc, err := proto.Encode(m)
	require.NoError(t, err)
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
