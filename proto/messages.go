package proto

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Version is the wire version this package speaks, the "v" of every message.
const Version = 1

// DefaultMaxPayload is the payload size cap decoders apply by default. A v1
// message is a few hundred bytes; anything near this is a bug or an attack.
const DefaultMaxPayload = 16 << 10

// MaxDepth is how deep a payload may nest objects and arrays, the payload's
// own object counting as 1. A v1 message nests 2 deep (a status event's
// result), and the wire evolves by optional fields, so 16 leaves room for
// any structure a field may grow while a payload of 16 KiB brackets, which
// the presence pass would walk to the end before it finds the missing
// fields they hide, is named for what it is.
const MaxDepth = 16

// Time is a timestamp that encodes as RFC 3339 in UTC with milliseconds,
// the wire's "ts" format, and decodes any RFC 3339 time.
type Time struct{ time.Time }

// TimeFormat is the layout of every timestamp on the wire.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// NewTime truncates t to milliseconds in UTC, the wire's precision, so a
// round trip through JSON gives back an equal value.
func NewTime(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(TimeFormat) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler. It truncates to milliseconds,
// the wire's precision, so a decoded time encodes back to the same value.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return fmt.Errorf("ts must be an RFC 3339 string, got %.32s", s)
	}
	v, err := time.Parse(time.RFC3339Nano, s[1:len(s)-1])
	if err != nil {
		return fmt.Errorf("ts is not RFC 3339: %.40s", s)
	}
	t.Time = v.UTC().Truncate(time.Millisecond)
	return nil
}

// The range of "ts": the times every warehouse engine stores as sent.
// ClickHouse's DateTime64, the type of every timestamp column, supports
// [1900-01-01 00:00:00, 2299-12-31 23:59:59.99999999]
// (https://clickhouse.com/docs/sql-reference/data-types/datetime64; servers
// from 26.7 on, like the embedded engine, take years 0000 to 9999, but older
// servers are in service). clickhouse-go v2.51.0, the driver of the server
// engines, converts a DateTime64 through time.UnixNano
// (lib/column/datetime64.go, timeToInt64), which overflows after
// 2262-04-11T23:47:16.854775807Z (the time package's documentation of
// UnixNano): 9999-12-31T23:59:59.999Z was stored as 1816-03-30 05:56:08
// (issue 19). So the range is the two's intersection, at the wire's
// millisecond precision. A device whose clock says otherwise is wrong.
var (
	// MinTS is the earliest "ts" the decoders accept.
	MinTS = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	// MaxTS is the latest "ts" the decoders accept.
	MaxTS = time.Unix(0, math.MaxInt64).UTC().Truncate(time.Millisecond)
)

// Header is the part every message shares.
type Header struct {
	// V is the wire version, always Version.
	V int `json:"v"`
	// DeviceID is the device the message is from or about.
	DeviceID string `json:"device_id"`
	// TS is when the message was produced.
	TS Time `json:"ts"`
	// Seq increases by at least one with every message the producer sends
	// about this device; consumers use (device_id, seq) to drop repeats.
	Seq uint64 `json:"seq"`
}

// NewHeader returns a version 1 header stamped with ts.
func NewHeader(deviceID string, ts time.Time, seq uint64) Header {
	return Header{V: Version, DeviceID: deviceID, TS: NewTime(ts), Seq: seq}
}

func (h Header) validate() error {
	switch {
	case h.V == 0:
		return fieldErr("v", ErrMissingField, "required")
	case h.V != Version:
		return fieldErr("v", ErrVersion, "got %d, this build speaks %d", h.V, Version)
	case h.DeviceID == "":
		return fieldErr("device_id", ErrMissingField, "required")
	case h.TS.IsZero():
		return fieldErr("ts", ErrMissingField, "required")
	case h.TS.Before(MinTS) || h.TS.After(MaxTS):
		return tsRangeErr(h.TS)
	case h.Seq == 0:
		return fieldErr("seq", ErrMissingField, "required, starts at 1")
	}
	if err := ValidateID(h.DeviceID); err != nil {
		return fieldErr("device_id", ErrOutOfRange, "%v", err)
	}
	return nil
}

// tsRangeErr is the error of a "ts" outside MinTS..MaxTS.
func tsRangeErr(ts Time) error {
	return fieldErr("ts", ErrTSOutOfRange, "%s not in %s..%s", ts.UTC().Format(TimeFormat), MinTS.Format(TimeFormat), MaxTS.Format(TimeFormat))
}

// Ranges the decoders enforce.
const (
	MinRSSI        = -140 // dBm
	MaxRSSI        = 0    // dBm
	MinTemperature = -60  // degrees Celsius
	MaxTemperature = 150  // degrees Celsius
	MaxWave        = 1000 // rollout waves
	maxText        = 256

	// MaxBatteryMV is the highest battery_mv the decoders accept, in
	// millivolts: a 24 V lead-acid system at its absorption charge (6
	// cells x 2.4 V = 14.4 V per 12 V battery, so 28.8 V) is the largest
	// pack an IoT device runs from; a single Li-ion cell stops at 4.2 V
	// (4.45 V for high-voltage cells). Anything above is an ADC error code
	// (0xFFFF) or a unit mistake (volts sent as centivolts).
	MaxBatteryMV = 30000
	// MaxBatteryCycles is the highest battery_cycles the decoders accept:
	// LiFePO4 cells are rated for a few thousand full cycles and Li-ion
	// for 300 to 1,000, so 100,000 is no battery still in service.
	MaxBatteryCycles = 100000
	// MaxBootCount is the highest boot_count the decoders accept, the
	// largest UInt32, the warehouse's column type: a device rebooting
	// every minute for 8,000 years.
	MaxBootCount = 1<<32 - 1
)

// Storage is a device's flash layout, the optional "storage" field of its
// telemetry: whether a power loss mid-write, or a rollback, can brick it.
type Storage string

// The storage layouts.
const (
	// StorageAB is a dual-bank (A/B) layout: an update writes the inactive
	// slot, so a power loss mid-write leaves the old slot to boot from and
	// a rollback is a slot switch that writes no image.
	StorageAB Storage = "ab"
	// StorageSingle is a single-bank layout: an update overwrites the only
	// image, so a power loss mid-write bricks the device, and a rollback
	// rewrites the old image with the same risk.
	StorageSingle Storage = "single"
)

// Valid reports whether s is a defined layout. The empty layout, unknown,
// is not one: a device that does not know leaves the field out.
func (s Storage) Valid() bool { return s == StorageAB || s == StorageSingle }

// Telemetry is a device's periodic reading, on fleet/<region>/<device>/telemetry.
type Telemetry struct {
	Header
	// Region is the device's region; it must match the topic's.
	Region string `json:"region"`
	// Firmware is the version the device runs now.
	Firmware string `json:"firmware"`
	// State is the device's OTA state when it took the reading.
	State State `json:"state"`
	// BatteryPct is the battery level, 0 to 100.
	BatteryPct float64 `json:"battery_pct"`
	// Charging is true while the device is on external power.
	Charging bool `json:"charging"`
	// RSSI is the signal strength in dBm, -140 to 0.
	RSSI int `json:"rssi_dbm"`
	// TemperatureC is the board temperature in degrees Celsius.
	TemperatureC float64 `json:"temperature_c"`
	// UptimeS is the number of seconds since the last boot.
	UptimeS int64 `json:"uptime_s"`

	// The device-physics fields below are optional: firmware that does not
	// measure them leaves them out (and older firmware does not know
	// them), and 0 or "" means unknown. The recovery policy estimates a
	// command's brick risk from them; without them it falls back to
	// battery_pct and its thresholds.

	// BatteryMV is the battery's terminal voltage at rest, in millivolts,
	// 1 to MaxBatteryMV; 0 when unknown. A fleet's low-battery guard is on
	// voltage, which (unlike a fuel gauge's percentage) is what a brown-out
	// detector trips on.
	BatteryMV int `json:"battery_mv,omitempty"`
	// BatteryCycles is the battery's full-equivalent charge cycles, 0 to
	// MaxBatteryCycles: its age, which raises its internal resistance and
	// so the sag under a flash write's current.
	BatteryCycles int `json:"battery_cycles,omitempty"`
	// HWModel is the device's hardware model; empty when unknown.
	HWModel string `json:"hw_model,omitempty"`
	// Storage is the device's flash layout, StorageAB or StorageSingle;
	// empty when unknown.
	Storage Storage `json:"storage,omitempty"`
	// BootCount is the number of boots since manufacture, 0 to
	// MaxBootCount; it only grows, so a jump between readings counts
	// reboots (a crash loop) the uptime alone would hide.
	BootCount int64 `json:"boot_count,omitempty"`
}

// Validate checks every field's presence and range.
func (m *Telemetry) Validate() error {
	if err := m.Header.validate(); err != nil {
		return err
	}
	if err := checkRegion(m.Region); err != nil {
		return err
	}
	if err := checkText("firmware", m.Firmware, true); err != nil {
		return err
	}
	if err := checkState("state", m.State); err != nil {
		return err
	}
	switch {
	case m.BatteryPct < 0 || m.BatteryPct > 100:
		return fieldErr("battery_pct", ErrOutOfRange, "%g not in 0..100", m.BatteryPct)
	case m.RSSI < MinRSSI || m.RSSI > MaxRSSI:
		return fieldErr("rssi_dbm", ErrOutOfRange, "%d not in %d..%d", m.RSSI, MinRSSI, MaxRSSI)
	case m.TemperatureC < MinTemperature || m.TemperatureC > MaxTemperature:
		return fieldErr("temperature_c", ErrOutOfRange, "%g not in %d..%d", m.TemperatureC, MinTemperature, MaxTemperature)
	case m.UptimeS < 0:
		return fieldErr("uptime_s", ErrOutOfRange, "%d is negative", m.UptimeS)
	case m.BatteryMV < 0 || m.BatteryMV > MaxBatteryMV:
		return fieldErr("battery_mv", ErrOutOfRange, "%d not in 0..%d", m.BatteryMV, MaxBatteryMV)
	case m.BatteryCycles < 0 || m.BatteryCycles > MaxBatteryCycles:
		return fieldErr("battery_cycles", ErrOutOfRange, "%d not in 0..%d", m.BatteryCycles, MaxBatteryCycles)
	case m.BootCount < 0 || m.BootCount > MaxBootCount:
		return fieldErr("boot_count", ErrOutOfRange, "%d not in 0..%d", m.BootCount, int64(MaxBootCount))
	}
	if err := checkText("hw_model", m.HWModel, false); err != nil {
		return err
	}
	if m.Storage != "" && !m.Storage.Valid() {
		return fieldErr("storage", ErrUnknownState, "%q is not a storage layout (%q or %q)", m.Storage, StorageAB, StorageSingle)
	}
	return nil
}

// StatusEvent is a device's OTA state change or command result, on
// fleet/<region>/<device>/status.
type StatusEvent struct {
	Header
	// Region is the device's region; it must match the topic's.
	Region string `json:"region"`
	// State is the OTA state the device is in now.
	State State `json:"state"`
	// Firmware is the version the device runs now.
	Firmware string `json:"firmware"`
	// TargetFirmware is the version the rollout wants on the device.
	TargetFirmware string `json:"target_firmware,omitempty"`
	// Wave is the rollout wave the device was scheduled in, from 1; 0 (or
	// absent) when the rollout has no waves or the device does not know.
	// Analysts split the rollout funnel by it.
	Wave int `json:"wave,omitempty"`
	// Detail is a free-text explanation from the device (an error code, say).
	Detail string `json:"detail,omitempty"`
	// Result is set when the event reports the end of a command.
	Result *CommandResult `json:"result,omitempty"`
}

// CommandResult is how a device reports a command's end, inside a StatusEvent.
type CommandResult struct {
	// CommandID is the ID of the command this result is for.
	CommandID string `json:"command_id"`
	// Action is the command's action, echoed back.
	Action Action `json:"action"`
	// Outcome says how it ended.
	Outcome Outcome `json:"outcome"`
}

// Validate checks every field's presence and range.
func (m *StatusEvent) Validate() error {
	if err := m.Header.validate(); err != nil {
		return err
	}
	if err := checkRegion(m.Region); err != nil {
		return err
	}
	if err := checkState("state", m.State); err != nil {
		return err
	}
	if err := checkText("firmware", m.Firmware, m.State != StateOffline); err != nil {
		return err
	}
	if err := checkText("target_firmware", m.TargetFirmware, false); err != nil {
		return err
	}
	if m.Wave < 0 || m.Wave > MaxWave {
		return fieldErr("wave", ErrOutOfRange, "%d not in 0..%d", m.Wave, MaxWave)
	}
	if err := checkText("detail", m.Detail, false); err != nil {
		return err
	}
	if r := m.Result; r != nil {
		if err := checkText("result.command_id", r.CommandID, true); err != nil {
			return err
		}
		if err := checkAction("result.action", r.Action); err != nil {
			return err
		}
		if r.Outcome == "" {
			return fieldErr("result.outcome", ErrMissingField, "required")
		}
		if !r.Outcome.Valid() {
			return fieldErr("result.outcome", ErrUnknownState, "%q is not an outcome", r.Outcome)
		}
	}
	return nil
}

// Command is a recovery command, published by the recoverer on
// fleet/<region>/<device>/cmd. Devices apply a command ID at most once.
type Command struct {
	Header
	// CommandID is unique per command; the device echoes it in its result.
	CommandID string `json:"command_id"`
	// Action is what to do.
	Action Action `json:"action"`
	// TargetFirmware is the version to (re)apply for a retry, or to restore for a rollback.
	TargetFirmware string `json:"target_firmware,omitempty"`
	// Reason is the rule that chose this command, for people reading the device's log.
	Reason string `json:"reason,omitempty"`
}

// Validate checks every field's presence and range.
func (m *Command) Validate() error {
	if err := m.Header.validate(); err != nil {
		return err
	}
	if err := checkText("command_id", m.CommandID, true); err != nil {
		return err
	}
	if err := checkAction("action", m.Action); err != nil {
		return err
	}
	if m.Action == ActionNone {
		return fieldErr("action", ErrUnknownState, "%q is not a command", m.Action)
	}
	if err := checkText("target_firmware", m.TargetFirmware, false); err != nil {
		return err
	}
	return checkText("reason", m.Reason, false)
}

// Decision is the recoverer's audit record of one decision about one device,
// on sentinel/recovery/<region>/<device>, including decisions to do nothing.
type Decision struct {
	Header
	// Region is the device's region.
	Region string `json:"region"`
	// Action is what the recoverer chose; ActionNone means no command.
	Action Action `json:"action"`
	// Reason is a stable code naming the rule that fired.
	Reason string `json:"reason"`
	// CommandID is the command sent, empty when none was.
	CommandID string `json:"command_id,omitempty"`
	// State is the device state the decision was taken on.
	State State `json:"state"`
	// Firmware is the device's firmware when the decision was taken.
	Firmware string `json:"firmware,omitempty"`
	// BatteryPct is the last known battery level, or -1 when unknown.
	BatteryPct float64 `json:"battery_pct"`
	// Charging is the last known charging flag.
	Charging bool `json:"charging"`
	// RSSI is the last known signal strength in dBm, 0 when unknown.
	RSSI int `json:"rssi_dbm"`
	// Attempt is the number of commands already sent for this failure, before this one.
	Attempt int `json:"attempt"`
}

// Validate checks every field's presence and range.
func (m *Decision) Validate() error {
	if err := m.Header.validate(); err != nil {
		return err
	}
	if err := checkRegion(m.Region); err != nil {
		return err
	}
	if err := checkAction("action", m.Action); err != nil {
		return err
	}
	if err := checkText("reason", m.Reason, true); err != nil {
		return err
	}
	if err := checkText("command_id", m.CommandID, false); err != nil {
		return err
	}
	if err := checkState("state", m.State); err != nil {
		return err
	}
	if err := checkText("firmware", m.Firmware, false); err != nil {
		return err
	}
	if m.BatteryPct < -1 || m.BatteryPct > 100 {
		return fieldErr("battery_pct", ErrOutOfRange, "%g not in -1..100", m.BatteryPct)
	}
	if m.RSSI < MinRSSI || m.RSSI > MaxRSSI {
		return fieldErr("rssi_dbm", ErrOutOfRange, "%d not in %d..%d", m.RSSI, MinRSSI, MaxRSSI)
	}
	if m.Attempt < 0 {
		return fieldErr("attempt", ErrOutOfRange, "%d is negative", m.Attempt)
	}
	return nil
}

func checkRegion(r string) error {
	if r == "" {
		return fieldErr("region", ErrMissingField, "required")
	}
	if err := ValidateID(r); err != nil {
		return fieldErr("region", ErrOutOfRange, "%v", err)
	}
	return nil
}

func checkText(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return fieldErr(field, ErrMissingField, "required")
	case len(v) > maxText:
		return fieldErr(field, ErrOutOfRange, "%d bytes, at most %d", len(v), maxText)
	case strings.ContainsAny(v, "\x00\n\r"):
		return fieldErr(field, ErrOutOfRange, "contains a control character")
	}
	return nil
}

func checkState(field string, s State) error {
	if s == "" {
		return fieldErr(field, ErrMissingField, "required")
	}
	if !s.Valid() {
		return fieldErr(field, ErrUnknownState, "%q is not an OTA state", s)
	}
	return nil
}

func checkAction(field string, a Action) error {
	if a == "" {
		return fieldErr(field, ErrMissingField, "required")
	}
	if !a.Valid() {
		return fieldErr(field, ErrUnknownState, "%q is not an action", a)
	}
	return nil
}
