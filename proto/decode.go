package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Message is any of the four v1 messages.
type Message interface {
	// Validate checks every field's presence and range.
	Validate() error
	header() *Header
}

func (h *Header) header() *Header { return h }

// DecodeTelemetry strictly decodes a telemetry payload of at most
// DefaultMaxPayload bytes.
func DecodeTelemetry(b []byte) (*Telemetry, error) {
	m := new(Telemetry)
	return m, decode(b, DefaultMaxPayload, m)
}

// DecodeStatus strictly decodes a status payload of at most
// DefaultMaxPayload bytes.
func DecodeStatus(b []byte) (*StatusEvent, error) {
	m := new(StatusEvent)
	return m, decode(b, DefaultMaxPayload, m)
}

// DecodeCommand strictly decodes a command payload of at most
// DefaultMaxPayload bytes.
func DecodeCommand(b []byte) (*Command, error) {
	m := new(Command)
	return m, decode(b, DefaultMaxPayload, m)
}

// DecodeDecision strictly decodes a recovery audit payload of at most
// DefaultMaxPayload bytes.
func DecodeDecision(b []byte) (*Decision, error) {
	m := new(Decision)
	return m, decode(b, DefaultMaxPayload, m)
}

// Decode parses topic, decodes payload as the message its kind carries and
// checks that the payload's device (and region, where it has one) is the
// topic's. It is what a consumer of fleet/+/+/+ calls on every message.
// The returned message is a *Telemetry, *StatusEvent or *Command.
func Decode(topic string, payload []byte, maxPayload int) (Topic, Message, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return Topic{}, nil, err
	}
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	var m Message
	switch t.Kind {
	case KindTelemetry:
		m = new(Telemetry)
	case KindStatus:
		m = new(StatusEvent)
	default:
		m = new(Command)
	}
	if err := decode(payload, maxPayload, m); err != nil {
		return t, nil, err
	}
	if id := m.header().DeviceID; id != t.Device {
		return t, nil, fieldErr("device_id", ErrTopicMismatch, "payload says %q, topic %q", id, topic)
	}
	var region string
	switch v := m.(type) {
	case *Telemetry:
		region = v.Region
	case *StatusEvent:
		region = v.Region
	}
	if region != "" && region != t.Region {
		return t, nil, fieldErr("region", ErrTopicMismatch, "payload says %q, topic %q", region, topic)
	}
	return t, m, nil
}

// Encode validates m and marshals it. Producers call it so a bug shows at
// the sender rather than as a dead letter at every consumer.
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return json.Marshal(m)
}

// decode checks and unmarshals one payload into m: through the fast path
// (fastdecode.go) when it can, else through the reference decoder, whose
// behaviour and errors the fast path shares.
func decode(b []byte, max int, m Message) error {
	if len(b) <= max && decodeFast(b, m) {
		return validateDecoded(m)
	}
	resetMessage(m)
	return decodeReference(b, max, m)
}

// resetMessage zeroes what a failed fast path may have left in m.
func resetMessage(m Message) {
	switch v := m.(type) {
	case *Telemetry:
		*v = Telemetry{}
	case *StatusEvent:
		*v = StatusEvent{}
	}
}

// decodeReference checks and unmarshals one payload into m, with the
// presence pass and encoding/json. The order of the checks decides which
// error a payload with several problems gets: size, then JSON syntax
// (ErrMalformed), then the presence pass (invalid UTF-8, nesting too deep,
// unknown, duplicate, null and missing keys, in the order they appear;
// see presence.go), then types (ErrWrongType), then Validate.
func decodeReference(b []byte, max int, m Message) error {
	if len(b) > max {
		return &FieldError{Err: ErrTooLarge, Detail: fmt.Sprintf("%d bytes, cap %d", len(b), max)}
	}
	// Only JSON's own whitespace: bytes.TrimSpace would also drop Unicode
	// spaces such as U+00A0, which are not JSON.
	trimmed := bytes.Trim(b, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &FieldError{Err: ErrMalformed, Detail: "payload is not a JSON object"}
	}
	if err := schemaFor(m).check(trimmed); err != nil {
		// A payload that is not JSON is malformed, whatever the presence
		// pass ran into first.
		if err := json.Unmarshal(trimmed, new(json.RawMessage)); err != nil {
			return translate(err)
		}
		if errors.Is(err, errScan) {
			// Unreachable: the scanner follows any valid JSON object.
			return &FieldError{Err: ErrMalformed, Detail: "payload is not a JSON object"}
		}
		return err
	}
	// The presence pass has checked every key, so encoding/json's
	// case-insensitive matching and unknown-field handling never come into
	// play, and json.Unmarshal (which rejects trailing data) is enough.
	if err := json.Unmarshal(trimmed, m); err != nil {
		return translate(err)
	}
	return validateDecoded(m)
}

// validateDecoded is Validate for a message both decoders have just read,
// having checked that every required key is present. A zero ts there was
// on the wire, 0001-01-01T00:00:00Z (time.Time's zero), so it is a time
// out of range, where Validate, which cannot tell it from a ts never set,
// says it is missing.
func validateDecoded(m Message) error {
	err := m.Validate()
	if err == nil {
		return nil // the hot path: no errors.As, whose target escapes to the heap
	}
	var fe *FieldError
	if errors.As(err, &fe) && fe.Field == "ts" && fe.Err == ErrMissingField {
		return tsRangeErr(m.header().TS)
	}
	return err
}

// translate turns encoding/json's errors into FieldErrors.
func translate(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		// encoding/json names fields of the embedded Header by their Go
		// path ("Header.seq"); the wire name is the last part.
		field := strings.TrimPrefix(typeErr.Field, "Header.")
		if field == "" {
			field = "(root)"
		}
		return fieldErr(field, ErrWrongType, "got JSON %s, want %s", typeErr.Value, typeErr.Type)
	case errors.As(err, &syntaxErr) && strings.Contains(syntaxErr.Error(), "exceeded max depth"):
		// encoding/json's own limit, 10000, past MaxDepth: the presence
		// pass stopped at MaxDepth, and the fault is the same.
		return &FieldError{Err: ErrTooDeep, Detail: fmt.Sprintf("%v at byte %d", syntaxErr, syntaxErr.Offset)}
	case errors.As(err, &syntaxErr):
		return &FieldError{Err: ErrMalformed, Detail: fmt.Sprintf("%v at byte %d", syntaxErr, syntaxErr.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Err: ErrMalformed, Detail: "truncated JSON"}
	}
	msg := err.Error()
	if strings.Contains(msg, "ts ") {
		return fieldErr("ts", ErrWrongType, "%s", msg)
	}
	return &FieldError{Err: ErrMalformed, Detail: msg}
}
