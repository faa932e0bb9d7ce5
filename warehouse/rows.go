package warehouse

import (
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// TelemetryRow is one row of the telemetry table. Field tags name the
// columns for both engines: `ch` for clickhouse-go, `json` for the embedded
// engine's JSONEachRow.
type TelemetryRow struct {
	DeviceID     string    `ch:"device_id" json:"device_id"`
	Region       string    `ch:"region" json:"region"`
	Firmware     string    `ch:"firmware" json:"firmware"`
	State        string    `ch:"state" json:"state"`
	TS           time.Time `ch:"ts" json:"ts"`
	Seq          uint64    `ch:"seq" json:"seq"`
	BatteryPct   float32   `ch:"battery_pct" json:"battery_pct"`
	Charging     bool      `ch:"charging" json:"charging"`
	RSSI         int16     `ch:"rssi_dbm" json:"rssi_dbm"`
	TemperatureC float32   `ch:"temperature_c" json:"temperature_c"`
	UptimeS      int64     `ch:"uptime_s" json:"uptime_s"`
	ReceivedAt   time.Time `ch:"received_at" json:"received_at"`
	// The device-physics fields (migration 11), 0 or "" when the device
	// did not report them.

	// BatteryMV is the battery voltage at rest in millivolts.
	BatteryMV uint16 `ch:"battery_mv" json:"battery_mv"`
	// BatteryCycles is the battery's full-equivalent charge cycles.
	BatteryCycles uint32 `ch:"battery_cycles" json:"battery_cycles"`
	// HWModel is the hardware model.
	HWModel string `ch:"hw_model" json:"hw_model"`
	// Storage is the flash layout, "ab" or "single".
	Storage string `ch:"storage" json:"storage"`
	// BootCount is the number of boots since manufacture.
	BootCount uint32 `ch:"boot_count" json:"boot_count"`
}

// TelemetryRowOf maps a decoded reading to its row.
func TelemetryRowOf(m *proto.Telemetry, received time.Time) TelemetryRow {
	return TelemetryRow{
		DeviceID: m.DeviceID, Region: m.Region, Firmware: m.Firmware, State: string(m.State),
		TS: m.TS.Time, Seq: m.Seq, BatteryPct: float32(m.BatteryPct), Charging: m.Charging,
		RSSI: int16(m.RSSI), TemperatureC: float32(m.TemperatureC), UptimeS: m.UptimeS,
		ReceivedAt: received.UTC(),
		// The decoders hold these in the columns' ranges.
		BatteryMV: uint16(m.BatteryMV), BatteryCycles: uint32(m.BatteryCycles), HWModel: m.HWModel,
		Storage: string(m.Storage), BootCount: uint32(m.BootCount),
	}
}

// StatusRow is one row of the status_events table; the command columns are
// empty unless the event reports a command result.
type StatusRow struct {
	DeviceID       string    `ch:"device_id" json:"device_id"`
	Region         string    `ch:"region" json:"region"`
	TS             time.Time `ch:"ts" json:"ts"`
	Seq            uint64    `ch:"seq" json:"seq"`
	State          string    `ch:"state" json:"state"`
	Firmware       string    `ch:"firmware" json:"firmware"`
	TargetFirmware string    `ch:"target_firmware" json:"target_firmware"`
	Detail         string    `ch:"detail" json:"detail"`
	CommandID      string    `ch:"command_id" json:"command_id"`
	Action         string    `ch:"action" json:"action"`
	Outcome        string    `ch:"outcome" json:"outcome"`
	ReceivedAt     time.Time `ch:"received_at" json:"received_at"`
	// Wave is the rollout wave from 1, 0 when unknown (migration 6).
	Wave uint16 `ch:"wave" json:"wave"`
}

// StatusRowOf maps a decoded status event to its row.
func StatusRowOf(m *proto.StatusEvent, received time.Time) StatusRow {
	r := StatusRow{
		DeviceID: m.DeviceID, Region: m.Region, TS: m.TS.Time, Seq: m.Seq, State: string(m.State),
		Firmware: m.Firmware, TargetFirmware: m.TargetFirmware, Detail: m.Detail,
		ReceivedAt: received.UTC(), Wave: uint16(m.Wave),
	}
	if m.Result != nil {
		r.CommandID, r.Action, r.Outcome = m.Result.CommandID, string(m.Result.Action), string(m.Result.Outcome)
	}
	return r
}

// CommandRow is one row of the commands table.
type CommandRow struct {
	CommandID      string    `ch:"command_id" json:"command_id"`
	DeviceID       string    `ch:"device_id" json:"device_id"`
	Region         string    `ch:"region" json:"region"`
	TS             time.Time `ch:"ts" json:"ts"`
	Seq            uint64    `ch:"seq" json:"seq"`
	Action         string    `ch:"action" json:"action"`
	TargetFirmware string    `ch:"target_firmware" json:"target_firmware"`
	Reason         string    `ch:"reason" json:"reason"`
}

// CommandRowOf maps a command sent to a device in region to its row.
func CommandRowOf(c *proto.Command, region string) CommandRow {
	return CommandRow{
		CommandID: c.CommandID, DeviceID: c.DeviceID, Region: region, TS: c.TS.Time, Seq: c.Seq,
		Action: string(c.Action), TargetFirmware: c.TargetFirmware, Reason: c.Reason,
	}
}

// DecisionRow is one row of the decisions table: the recoverer's decision
// and a snapshot of the inputs it was taken on.
type DecisionRow struct {
	DeviceID   string    `ch:"device_id" json:"device_id"`
	Region     string    `ch:"region" json:"region"`
	TS         time.Time `ch:"ts" json:"ts"`
	Seq        uint64    `ch:"seq" json:"seq"`
	Action     string    `ch:"action" json:"action"`
	Reason     string    `ch:"reason" json:"reason"`
	CommandID  string    `ch:"command_id" json:"command_id"`
	State      string    `ch:"state" json:"state"`
	Firmware   string    `ch:"firmware" json:"firmware"`
	BatteryPct float32   `ch:"battery_pct" json:"battery_pct"`
	Charging   bool      `ch:"charging" json:"charging"`
	RSSI       int16     `ch:"rssi_dbm" json:"rssi_dbm"`
	Attempt    uint16    `ch:"attempt" json:"attempt"`
}

// DecisionRowOf maps an audit record to its row.
func DecisionRowOf(d *proto.Decision) DecisionRow {
	return DecisionRow{
		DeviceID: d.DeviceID, Region: d.Region, TS: d.TS.Time, Seq: d.Seq, Action: string(d.Action),
		Reason: d.Reason, CommandID: d.CommandID, State: string(d.State), Firmware: d.Firmware,
		BatteryPct: float32(d.BatteryPct), Charging: d.Charging, RSSI: int16(d.RSSI), Attempt: uint16(d.Attempt),
	}
}

// BreakerVerdictRow is one row of the breaker_verdicts table: a cohort's
// verdict under a rule, on the numbers of its deciding signal, and in
// Evidence the whole verdict as the advisory carries it, as JSON.
type BreakerVerdictRow struct {
	TS             time.Time `ch:"ts" json:"ts"`
	Firmware       string    `ch:"firmware" json:"firmware"`
	Region         string    `ch:"region" json:"region"`
	Rule           string    `ch:"rule" json:"rule"`
	Verdict        string    `ch:"verdict" json:"verdict"`
	Signal         string    `ch:"signal" json:"signal"`
	Estimate       float64   `ch:"estimate" json:"estimate"`
	Bound          float64   `ch:"bound" json:"bound"`
	Limit          float64   `ch:"bound_limit" json:"bound_limit"`
	Baseline       float64   `ch:"baseline" json:"baseline"`
	Sample         float64   `ch:"sample" json:"sample"`
	Events         float64   `ch:"events" json:"events"`
	BaselineSample float64   `ch:"baseline_sample" json:"baseline_sample"`
	BaselineEvents float64   `ch:"baseline_events" json:"baseline_events"`
	Alpha          float64   `ch:"alpha" json:"alpha"`
	Active         uint16    `ch:"active" json:"active"`
	Advised        bool      `ch:"advised" json:"advised"`
	Evidence       string    `ch:"evidence" json:"evidence"`
}

// MaxDeadLetterPayload is how much of a rejected payload is kept.
const MaxDeadLetterPayload = 4 << 10

// DeadLetterRow is one row of the dead_letters table: a message that failed
// decoding, with the reason, so nothing is silently dropped.
type DeadLetterRow struct {
	ReceivedAt   time.Time `ch:"received_at" json:"received_at"`
	Topic        string    `ch:"topic" json:"topic"`
	Reason       string    `ch:"reason" json:"reason"`
	Error        string    `ch:"error" json:"error"`
	Payload      string    `ch:"payload" json:"payload"`
	PayloadBytes uint32    `ch:"payload_bytes" json:"payload_bytes"`
}

// DeadLetterRowOf records payload on topic as rejected with err. The payload
// is truncated to MaxDeadLetterPayload bytes; its full size is kept.
func DeadLetterRowOf(topic string, payload []byte, err error, received time.Time) DeadLetterRow {
	kept := payload
	if len(kept) > MaxDeadLetterPayload {
		kept = kept[:MaxDeadLetterPayload]
	}
	return DeadLetterRow{
		ReceivedAt: received.UTC(), Topic: topic, Reason: proto.Reason(err), Error: err.Error(),
		Payload: string(kept), PayloadBytes: uint32(len(payload)),
	}
}

// TableGroundTruth holds the simulator's ground truth, one row per device
// and run.
const TableGroundTruth = "ground_truth"

// GroundTruthRow is one device's ground truth in one simulated run: what
// failed, what would have fixed it (remedy), and how it ended (verdict:
// healthy, recovered, bricked_by_command, left_broken, ...). Its wave
// counts from 1, as status_events' does.
type GroundTruthRow struct {
	RunID string `ch:"run_id" json:"run_id"`
	// Controller names the recovery controller of the run: "sentinel" or
	// a baseline.
	Controller string `ch:"controller" json:"controller"`
	// RunStarted and RunEnded bound the run in time (migration 8).
	RunStarted        time.Time `ch:"run_started" json:"run_started"`
	RunEnded          time.Time `ch:"run_ended" json:"run_ended"`
	DeviceID          string    `ch:"device_id" json:"device_id"`
	Region            string    `ch:"region" json:"region"`
	Model             string    `ch:"model" json:"model"`
	ToFirmware        string    `ch:"to_firmware" json:"to_firmware"`
	Wave              uint16    `ch:"wave" json:"wave"`
	BadBuild          bool      `ch:"bad_build" json:"bad_build"`
	Power             string    `ch:"power" json:"power"`
	WeakSignal        bool      `ch:"weak_signal" json:"weak_signal"`
	Fate              string    `ch:"fate" json:"fate"`
	Cause             string    `ch:"cause" json:"cause"`
	Started           bool      `ch:"started" json:"started"`
	Remedy            string    `ch:"remedy" json:"remedy"`
	RetriesToFix      uint16    `ch:"retries_to_fix" json:"retries_to_fix"`
	BatteryAtFailure  float32   `ch:"battery_at_failure" json:"battery_at_failure"`
	ChargingAtFailure bool      `ch:"charging_at_failure" json:"charging_at_failure"`
	FinalState        string    `ch:"final_state" json:"final_state"`
	FinalFirmware     string    `ch:"final_firmware" json:"final_firmware"`
	BatteryPct        float32   `ch:"battery_pct" json:"battery_pct"`
	Commands          uint32    `ch:"commands" json:"commands"`
	Retries           uint32    `ch:"retries" json:"retries"`
	Rollbacks         uint32    `ch:"rollbacks" json:"rollbacks"`
	Defers            uint32    `ch:"defers" json:"defers"`
	Halts             uint32    `ch:"halts" json:"halts"`
	UnsafeCommands    uint32    `ch:"unsafe_commands" json:"unsafe_commands"`
	BrickedBy         string    `ch:"bricked_by" json:"bricked_by"`
	Verdict           string    `ch:"verdict" json:"verdict"`
}
