package recoverer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// The queries that rebuild the tracker from the warehouse at start. A
// failure ends at a device's last healthy status (idle, rolled back, or
// updated on its target); the commands sent after it are the current
// failure's attempts. Times compare the ingestor's received_at with the
// recoverer's command ts: both are server clocks.
const (
	rebuildStatus = `SELECT region, device_id,
	argMax(state, seq), argMax(firmware, seq), argMax(target_firmware, seq), max(seq),
	max(received_at), argMax(received_at, seq),
	argMaxIf(firmware, seq, state IN ('idle', 'rolled_back'))
FROM status_events
GROUP BY region, device_id`
	rebuildCommands = `WITH ok AS (
	SELECT region, device_id,
		maxIf(received_at, state IN ('idle', 'rolled_back') OR (state = 'updated' AND firmware = target_firmware)) AS last_ok
	FROM status_events
	GROUP BY region, device_id
)
SELECT c.region, c.device_id,
	countIf(c.action = 'retry') AS retries,
	countIf(c.action = 'rollback') AS rollbacks,
	countIf(c.action = 'halt') > 0 AS halted,
	argMaxIf(c.command_id, c.ts, c.action IN ('retry', 'rollback')) AS last_id,
	maxIf(c.ts, c.action IN ('retry', 'rollback')) AS last_cmd,
	last_id != '' AND last_id NOT IN (SELECT command_id FROM status_events WHERE command_id != '' AND outcome != '') AS open,
	argMaxIf(c.reason, c.ts, c.action = 'defer') AS defer_reason,
	maxIf(c.ts, c.action = 'defer') AS last_defer,
	countIf(c.action = 'retry' AND c.command_id IN (
		SELECT command_id FROM status_events
		WHERE command_id != '' AND outcome = 'failed' AND state = 'download_failed')) AS download_failures
FROM commands AS c FINAL
LEFT JOIN ok ON ok.region = c.region AND ok.device_id = c.device_id
WHERE c.ts > ok.last_ok
GROUP BY c.region, c.device_id`
	rebuildDecisions = `SELECT region, device_id, argMax(action, seq), argMax(reason, seq)
FROM decisions
GROUP BY region, device_id`
	rebuildTelemetry = `SELECT region, device_id,
	argMax(battery_pct, seq), argMax(charging, seq), argMax(rssi_dbm, seq), max(received_at), max(seq)
FROM telemetry
GROUP BY region, device_id`
)

// rebuild fills t from the warehouse: every device's latest status and
// reading (and the seqs, so redelivered messages stay duplicates), and for
// a device in a failure its attempt counts, its open command, its halt and
// its defer in force. A restarted recoverer so sends no command twice and
// loses no attempt. It returns how many devices it restored.
func rebuild(ctx context.Context, db *warehouse.DB, t *tracker) (int, error) {
	res, err := db.Query(ctx, rebuildStatus)
	if err != nil {
		return 0, fmt.Errorf("recoverer: rebuild status: %w", err)
	}
	for _, r := range res.Rows {
		d := t.device(r[0], r[1])
		d.state, d.firmware, d.target = proto.State(r[2]), r[3], r[4]
		d.statusSeq, _ = strconv.ParseUint(r[5], 10, 64)
		d.lastHeard, d.stateSince = chTime(r[6]), chTime(r[7])
		d.stableFirmware = r[8]
	}
	if res, err = db.Query(ctx, rebuildTelemetry); err != nil {
		return 0, fmt.Errorf("recoverer: rebuild telemetry: %w", err)
	}
	for _, r := range res.Rows {
		d := t.device(r[0], r[1])
		b, _ := strconv.ParseFloat(r[2], 64)
		rssi, _ := strconv.Atoi(r[4])
		at := chTime(r[5])
		d.tel = policy.Telemetry{Known: true, BatteryPct: b, Charging: r[3] == "true" || r[3] == "1", RSSI: rssi, At: at}
		d.telemetrySeq, _ = strconv.ParseUint(r[6], 10, 64)
		if at.After(d.lastHeard) {
			d.lastHeard = at
		}
	}
	if res, err = db.Query(ctx, rebuildCommands); err != nil {
		return 0, fmt.Errorf("recoverer: rebuild commands: %w", err)
	}
	for _, r := range res.Rows {
		d := t.device(r[0], r[1])
		if d.settled() {
			continue // healthy since; its failure is over
		}
		d.retries, _ = strconv.Atoi(r[2])
		d.rollbacks, _ = strconv.Atoi(r[3])
		d.downloadFailures, _ = strconv.Atoi(r[10])
		d.halted = r[4] == "true" || r[4] == "1"
		d.lastCommand = chTime(r[6])
		if (r[7] == "true" || r[7] == "1") && !d.halted {
			d.open = r[5]
			t.open[d] = struct{}{}
		}
		if chTime(r[9]).After(d.lastCommand) {
			d.deferReason = r[8]
		}
		d.decided = true
	}
	if res, err = db.Query(ctx, rebuildDecisions); err != nil {
		return 0, fmt.Errorf("recoverer: rebuild decisions: %w", err)
	}
	for _, r := range res.Rows {
		if d := t.devices[r[0]+"/"+r[1]]; d != nil && d.actionable() {
			d.decided = true
			d.last = policy.Decision{Action: proto.Action(r[2]), Reason: r[3]}
		}
	}
	return len(t.devices), nil
}

// chTime parses a DateTime64 as the warehouse prints it, in UTC; zero if
// it cannot.
func chTime(s string) time.Time {
	tm, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC)
	if err != nil || tm.Unix() <= 0 {
		return time.Time{}
	}
	return tm
}
