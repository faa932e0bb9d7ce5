package warehouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// TestInsertRoundTrip: the rows the embedded engine's RowBinary encoder
// writes read back exactly, awkward strings and edge values included.
func TestInsertRoundTrip(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	ts := time.Date(2026, 11, 27, 10, 11, 12, 345e6, time.UTC)
	tests := []struct {
		name  string
		table string
		rows  any
		query string
		want  [][]string
	}{
		{"telemetry", warehouse.TableTelemetry, []warehouse.TelemetryRow{
			{DeviceID: "dev-\t\n'\\\"ü", Region: "eu-west", Firmware: "1.5.0", State: "partial", TS: ts, Seq: 1<<63 + 5,
				BatteryPct: 12.5, Charging: true, RSSI: -140, TemperatureC: -20.25, UptimeS: -1, ReceivedAt: ts.Add(time.Second),
				BatteryMV: 65535, BatteryCycles: 1<<32 - 1, HWModel: "tracker-'t1'\n", Storage: "single", BootCount: 1<<32 - 1},
			{DeviceID: "", Region: "", Firmware: "", State: "idle", TS: ts.In(time.FixedZone("x", 3600)), Seq: 0, ReceivedAt: ts},
		}, "SELECT device_id, region, firmware, state, ts, seq, battery_pct, charging, rssi_dbm, temperature_c, uptime_s, received_at, battery_mv, battery_cycles, hw_model, storage, boot_count FROM telemetry ORDER BY seq DESC",
			[][]string{
				{"dev-\t\n'\\\"ü", "eu-west", "1.5.0", "partial", "2026-11-27 10:11:12.345", "9223372036854775813", "12.5", "true", "-140", "-20.25", "-1", "2026-11-27 10:11:13.345",
					"65535", "4294967295", "tracker-'t1'\n", "single", "4294967295"},
				{"", "", "", "idle", "2026-11-27 10:11:12.345", "0", "0", "false", "0", "0", "0", "2026-11-27 10:11:12.345", "0", "0", "", "", "0"},
			}},
		{"status", warehouse.TableStatusEvents, []warehouse.StatusRow{
			{DeviceID: "dev-1", Region: "us-east", TS: ts, Seq: 7, State: "install_failed", Firmware: "1.4.2", TargetFirmware: "1.5.0",
				Detail: "line1\nline2\ttab", CommandID: "c-1", Action: "retry", Outcome: "ok", ReceivedAt: ts, Wave: 3},
		}, "SELECT device_id, region, ts, seq, state, firmware, target_firmware, detail, command_id, action, outcome, received_at, wave FROM status_events",
			[][]string{{"dev-1", "us-east", "2026-11-27 10:11:12.345", "7", "install_failed", "1.4.2", "1.5.0", "line1\nline2\ttab", "c-1", "retry", "ok", "2026-11-27 10:11:12.345", "3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch rows := tc.rows.(type) {
			case []warehouse.TelemetryRow:
				err = warehouse.Insert(ctx, db, tc.table, rows)
			case []warehouse.StatusRow:
				err = warehouse.Insert(ctx, db, tc.table, rows)
			}
			require.NoError(t, err)
			res, err := db.Query(ctx, tc.query)
			require.NoError(t, err)
			require.Equal(t, tc.want, res.Rows)
		})
	}
}
