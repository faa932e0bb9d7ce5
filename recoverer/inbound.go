package recoverer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// errNotActed means a message decoded but is of a kind the recoverer does
// not act on (a command on fleet/<region>/<device>/cmd, which it does not
// subscribe to): it is skipped, not counted as invalid.
var errNotActed = errors.New("recoverer: not a message the recoverer acts on")

// inboundKind says which of its fields an inbound carries.
type inboundKind int

const (
	// inReading is a device's telemetry: region and reading are set.
	inReading inboundKind = iota + 1
	// inStatus is a device's status (a state change or a command result):
	// region and status are set.
	inStatus
	// inAdvisory is a retained halt advisory on
	// sentinel/rollout/<firmware>/halt: firmware is set, and cleared when
	// the payload is empty (the breaker's own clear, or an operator's).
	inAdvisory
)

// inbound is one MQTT message the recoverer subscribes to, decoded. It is
// made by decode alone, on the MQTT client's goroutine, so every message is
// parsed and decoded once, and the tracker gets typed values only.
type inbound struct {
	kind     inboundKind
	region   string
	reading  *proto.Telemetry
	status   *proto.StatusEvent
	firmware string
	cleared  bool
	received time.Time
}

// decode turns a message the recoverer subscribed to into an inbound: an
// advisory by its topic, anything else through proto.Decode, which parses
// the device topic once, decodes the payload strictly and checks that the
// payload's device and region are the topic's. An error wraps proto's
// (proto.Reason names it) for a message to count as invalid, or is
// errNotActed for one to skip.
func decode(topic string, payload []byte, received time.Time) (inbound, error) {
	if fw, ok := advisoryFirmware(topic); ok {
		return inbound{kind: inAdvisory, firmware: fw, cleared: len(payload) == 0, received: received}, nil
	}
	tp, msg, err := proto.Decode(topic, payload, 0)
	if err != nil {
		return inbound{}, fmt.Errorf("recoverer: decode %s: %w", topic, err)
	}
	switch m := msg.(type) {
	case *proto.Telemetry:
		return inbound{kind: inReading, region: tp.Region, reading: m, received: received}, nil
	case *proto.StatusEvent:
		return inbound{kind: inStatus, region: tp.Region, status: m, received: received}, nil
	default:
		return inbound{}, fmt.Errorf("%w: %T on %s", errNotActed, msg, topic)
	}
}

// advisoryFirmware returns the firmware of an advisory topic,
// sentinel/rollout/<firmware>/halt, the topics advisoryFilter matches.
func advisoryFirmware(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, proto.RolloutRoot+"/")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/halt")
}
