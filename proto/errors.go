package proto

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on. Every decoding error wraps exactly one
// of them; Reason turns it into the short code stored in dead_letters.
var (
	// ErrTooLarge means the payload exceeds the size cap.
	ErrTooLarge = errors.New("proto: payload too large")
	// ErrMalformed means the payload is not a JSON object.
	ErrMalformed = errors.New("proto: malformed JSON")
	// ErrTooDeep means the payload nests objects and arrays deeper than
	// MaxDepth. A v1 message nests two deep; a deep value is an attack or
	// a bug, and is named as such rather than by the fields it hides.
	ErrTooDeep = errors.New("proto: nested too deep")
	// ErrInvalidUTF8 means a string, key or value, holds bytes that are not
	// UTF-8 or a \u escape of half a surrogate pair. Neither is a
	// character: encoding/json would store U+FFFD in its place, a value
	// the device never sent.
	ErrInvalidUTF8 = errors.New("proto: invalid UTF-8")
	// ErrDuplicateKey means an object has a key twice. encoding/json would
	// keep the last value and other JSON readers the first, so two
	// consumers would see two messages.
	ErrDuplicateKey = errors.New("proto: duplicate key")
	// ErrWrongType means a field holds a JSON value of the wrong type.
	ErrWrongType = errors.New("proto: wrong type")
	// ErrMissingField means a required field is absent or empty, or any
	// field, required or optional, is JSON null: null is never a value on
	// the wire, a field without a value is left out.
	ErrMissingField = errors.New("proto: missing field")
	// ErrUnknownField means the payload has a field version 1 does not
	// define. Keys are case-sensitive: "V" or "DEVICE_ID" is unknown. A
	// field inside "result" is named by its path, "result.x".
	ErrUnknownField = errors.New("proto: unknown field")
	// ErrOutOfRange means a numeric field is outside its allowed range.
	ErrOutOfRange = errors.New("proto: out of range")
	// ErrTSOutOfRange means "ts" is a valid RFC 3339 time outside the range
	// every consumer can store, MinTS to MaxTS: a device clock gone wrong,
	// which a warehouse would otherwise store as some other time.
	ErrTSOutOfRange = errors.New("proto: timestamp out of range")
	// ErrUnknownState means an OTA state, action or outcome is not one of the defined values.
	ErrUnknownState = errors.New("proto: unknown value")
	// ErrVersion means the "v" field names a wire version this code does not speak.
	ErrVersion = errors.New("proto: unsupported version")
	// ErrTopicMismatch means the payload's device_id differs from the topic's device.
	ErrTopicMismatch = errors.New("proto: topic/device mismatch")
	// ErrBadTopic means a topic name or identifier is not valid.
	ErrBadTopic = errors.New("proto: bad topic")
)

// FieldError says which field of a payload failed and why. It wraps one of
// the sentinel errors above, so errors.Is(err, ErrOutOfRange) works.
type FieldError struct {
	// Field is the JSON name of the field, empty when the whole payload failed.
	Field string
	// Err is the sentinel error: the reason.
	Err error
	// Detail says what was found, for people reading logs.
	Detail string
}

// Error implements error.
func (e *FieldError) Error() string {
	switch {
	case e.Field == "" && e.Detail == "":
		return e.Err.Error()
	case e.Field == "":
		return fmt.Sprintf("%v: %s", e.Err, e.Detail)
	case e.Detail == "":
		return fmt.Sprintf("%v: field %q", e.Err, e.Field)
	}
	return fmt.Sprintf("%v: field %q: %s", e.Err, e.Field, e.Detail)
}

// Unwrap returns the sentinel error.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error, format string, args ...any) error {
	return &FieldError{Field: field, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// Reason codes, what Reason returns: the reason column of dead_letters and
// the reason label of the ingestor's dead-letter counter. They are a
// contract with stored rows and dashboards: add codes, never rename one.
const (
	ReasonTooLarge      = "too_large"
	ReasonMalformed     = "malformed"
	ReasonTooDeep       = "too_deep"
	ReasonInvalidUTF8   = "invalid_utf8"
	ReasonDuplicateKey  = "duplicate_key"
	ReasonWrongType     = "wrong_type"
	ReasonMissingField  = "missing_field"
	ReasonUnknownField  = "unknown_field"
	ReasonOutOfRange    = "out_of_range"
	ReasonTSOutOfRange  = "ts_out_of_range"
	ReasonUnknownValue  = "unknown_value"
	ReasonBadVersion    = "bad_version"
	ReasonTopicMismatch = "topic_mismatch"
	ReasonBadTopic      = "bad_topic"
	ReasonOther         = "other"
)

// reasons maps each sentinel error to its code.
var reasons = []struct {
	err  error
	code string
}{
	{ErrTooLarge, ReasonTooLarge},
	{ErrMalformed, ReasonMalformed},
	{ErrTooDeep, ReasonTooDeep},
	{ErrInvalidUTF8, ReasonInvalidUTF8},
	{ErrDuplicateKey, ReasonDuplicateKey},
	{ErrWrongType, ReasonWrongType},
	{ErrMissingField, ReasonMissingField},
	{ErrUnknownField, ReasonUnknownField},
	{ErrOutOfRange, ReasonOutOfRange},
	{ErrTSOutOfRange, ReasonTSOutOfRange},
	{ErrUnknownState, ReasonUnknownValue},
	{ErrVersion, ReasonBadVersion},
	{ErrTopicMismatch, ReasonTopicMismatch},
	{ErrBadTopic, ReasonBadTopic},
}

// Reason returns the short, stable code of the sentinel error err wraps,
// for counting and storing rejections (one of the Reason constants), or
// ReasonOther when it wraps none.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return ReasonOther
}
