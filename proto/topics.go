package proto

import (
	"fmt"
	"strings"
)

// Topic roots and kinds. A device topic is fleet/<region>/<device>/<kind>; a
// recovery audit topic is sentinel/recovery/<region>/<device>.
const (
	// FleetRoot is the first level of every device topic.
	FleetRoot = "fleet"
	// RecoveryRoot is the prefix of the recoverer's audit topics.
	RecoveryRoot = "sentinel/recovery"
	// RolloutRoot is the prefix of retained rollout advisories.
	RolloutRoot = "sentinel/rollout"
)

// Kind is the last level of a device topic: what the message on it is.
type Kind string

// The kinds of device topic.
const (
	// KindTelemetry carries periodic readings, published by the device.
	KindTelemetry Kind = "telemetry"
	// KindStatus carries OTA state changes and command results, published by the device.
	KindStatus Kind = "status"
	// KindCommand carries recovery commands, published by the recoverer to the device.
	KindCommand Kind = "cmd"
)

// Subscription filters the services use. The ingestor joins the shared group
// so several instances split the load; the recoverer reads every device.
const (
	// FilterTelemetry matches every device's telemetry.
	FilterTelemetry = "fleet/+/+/telemetry"
	// FilterStatus matches every device's status.
	FilterStatus = "fleet/+/+/status"
	// FilterRecovery matches every recovery audit message.
	FilterRecovery = "sentinel/recovery/#"
	// IngestGroup is the shared-subscription group of the ingestors.
	IngestGroup = "ingest"
)

// Shared returns the MQTT v5 shared-subscription form of filter for group,
// "$share/<group>/<filter>".
func Shared(group, filter string) string {
	return "$share/" + group + "/" + filter
}

// MaxIDLen bounds region and device identifiers so they fit topic levels,
// client IDs and warehouse keys comfortably.
const MaxIDLen = 64

// ValidateID reports whether id can be a region or device identifier: 1 to
// MaxIDLen characters from [A-Za-z0-9._-]. Wildcards and level separators
// are refused because an ID fills one whole topic level.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty identifier", ErrBadTopic)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: identifier %.16q... longer than %d bytes", ErrBadTopic, id, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: identifier %q has character %q (allowed: A-Z a-z 0-9 . _ -)", ErrBadTopic, id, c)
		}
	}
	return nil
}

// Topic is a parsed device topic.
type Topic struct {
	// Region is the device's region, the second level.
	Region string
	// Device is the device ID, the third level.
	Device string
	// Kind is what the topic carries, the fourth level.
	Kind Kind
}

// String returns the topic name, fleet/<region>/<device>/<kind>.
func (t Topic) String() string {
	return FleetRoot + "/" + t.Region + "/" + t.Device + "/" + string(t.Kind)
}

// TelemetryTopic returns fleet/<region>/<device>/telemetry.
func TelemetryTopic(region, device string) string {
	return Topic{Region: region, Device: device, Kind: KindTelemetry}.String()
}

// StatusTopic returns fleet/<region>/<device>/status.
func StatusTopic(region, device string) string {
	return Topic{Region: region, Device: device, Kind: KindStatus}.String()
}

// CommandTopic returns fleet/<region>/<device>/cmd.
func CommandTopic(region, device string) string {
	return Topic{Region: region, Device: device, Kind: KindCommand}.String()
}

// RecoveryTopic returns sentinel/recovery/<region>/<device>, where the
// recoverer publishes every decision it takes about the device.
func RecoveryTopic(region, device string) string {
	return RecoveryRoot + "/" + region + "/" + device
}

// ParseTopic parses a device topic, fleet/<region>/<device>/<kind>. It
// returns an error wrapping ErrBadTopic for anything else.
func ParseTopic(name string) (Topic, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != FleetRoot {
		return Topic{}, fmt.Errorf("%w: %q is not fleet/<region>/<device>/<kind>", ErrBadTopic, name)
	}
	t := Topic{Region: parts[1], Device: parts[2], Kind: Kind(parts[3])}
	switch t.Kind {
	case KindTelemetry, KindStatus, KindCommand:
	default:
		return Topic{}, fmt.Errorf("%w: %q has unknown kind %q", ErrBadTopic, name, parts[3])
	}
	if err := ValidateID(t.Region); err != nil {
		return Topic{}, fmt.Errorf("region in %q: %w", name, err)
	}
	if err := ValidateID(t.Device); err != nil {
		return Topic{}, fmt.Errorf("device in %q: %w", name, err)
	}
	return t, nil
}
