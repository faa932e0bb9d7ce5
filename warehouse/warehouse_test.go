package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		name    string
		dsn     string
		kind    warehouse.Kind
		path    string
		wantErr string
	}{
		{name: "absolute embedded", dsn: "chdb:///var/lib/sentinel", kind: warehouse.Embedded, path: "/var/lib/sentinel"},
		{name: "embedded with options", dsn: "chdb:///tmp/w?x=1", kind: warehouse.Embedded, path: "/tmp/w"},
		{name: "native server", dsn: "clickhouse://u:p@ch:9000/sentinel", kind: warehouse.Server},
		{name: "http server", dsn: "http://ch:8123/sentinel", kind: warehouse.Server},
		{name: "empty path", dsn: "chdb://", wantErr: "no directory"},
		{name: "unknown scheme", dsn: "postgres://u:secret@h/db", wantErr: "unknown scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := warehouse.ParseDSN(tt.dsn)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "secret", "errors must not leak passwords")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.kind, d.Kind)
			if tt.path != "" {
				require.Equal(t, tt.path, d.Path)
			}
		})
	}
}

func telemetry(device string, seq uint64) warehouse.TelemetryRow {
	ts := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
	return warehouse.TelemetryRow{
		DeviceID: device, Region: "eu-west", Firmware: "1.4.2", State: "idle", TS: ts, Seq: seq,
		BatteryPct: 55.5, Charging: seq%2 == 0, RSSI: -71, TemperatureC: 31.25, UptimeS: int64(seq), ReceivedAt: ts,
	}
}

func TestWarehouse(t *testing.T) {
	ctx := context.Background()
	db := warehousetest.Open(t)

	t.Run("migration versions are unique and increasing", func(t *testing.T) {
		for i := 1; i < len(warehouse.Migrations); i++ {
			require.Greater(t, warehouse.Migrations[i].Version, warehouse.Migrations[i-1].Version,
				"migration %q must have a version above %q's", warehouse.Migrations[i].Name, warehouse.Migrations[i-1].Name)
		}
	})

	t.Run("migrate is idempotent", func(t *testing.T) {
		require.NoError(t, db.Migrate(ctx))
		require.NoError(t, db.Migrate(ctx))
		n, err := db.QueryInt(ctx, "SELECT count() FROM schema_migrations FINAL")
		require.NoError(t, err)
		require.EqualValues(t, len(warehouse.Migrations), n)
		for _, table := range []string{"telemetry", "status_events", "commands", "decisions", "dead_letters"} {
			n, err := db.QueryInt(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = '"+table+"'")
			require.NoError(t, err)
			require.EqualValues(t, 1, n, "table %s", table)
		}
	})

	t.Run("redelivered telemetry counts once", func(t *testing.T) {
		var rows []warehouse.TelemetryRow
		for seq := uint64(1); seq <= 100; seq++ {
			rows = append(rows, telemetry("dev-a", seq))
		}
		require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableTelemetry, rows))
		// A crash between commit and ack redelivers a batch: insert half again.
		require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableTelemetry, rows[:50]))
		raw, err := db.QueryInt(ctx, "SELECT count() FROM telemetry")
		require.NoError(t, err)
		require.EqualValues(t, 150, raw, "both inserts are stored")
		n, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL")
		require.NoError(t, err)
		require.EqualValues(t, 100, n, "FINAL sees each (device_id, seq) once")
	})

	t.Run("values round trip", func(t *testing.T) {
		res, err := db.Query(ctx, "SELECT device_id, seq, battery_pct, charging, rssi_dbm, ts FROM telemetry FINAL WHERE seq = 2")
		require.NoError(t, err)
		require.Equal(t, []string{"device_id", "seq", "battery_pct", "charging", "rssi_dbm", "ts"}, colNames(res))
		require.Equal(t, [][]string{{"dev-a", "2", "55.5", "true", "-71", "2026-11-27 06:00:02.000"}}, res.Rows)
	})

	t.Run("engine errors keep ClickHouse's message", func(t *testing.T) {
		_, err := db.Query(ctx, "SELECT nope FROM telemetry")
		require.Error(t, err)
		require.Contains(t, err.Error(), "UNKNOWN_IDENTIFIER")
	})

	t.Run("dead letters keep reason and truncated payload", func(t *testing.T) {
		payload := []byte(`{"v":1,"device_id":"x","battery_pct":"full"` + strings.Repeat(" ", 5*warehouse.MaxDeadLetterPayload) + `}`)
		_, decodeErr := proto.DecodeTelemetry(payload)
		require.Error(t, decodeErr)
		row := warehouse.DeadLetterRowOf("fleet/eu/x/telemetry", payload, decodeErr, time.Now())
		require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableDeadLetters, []warehouse.DeadLetterRow{row}))
		res, err := db.Query(ctx, "SELECT reason, length(payload), payload_bytes FROM dead_letters")
		require.NoError(t, err)
		require.Equal(t, [][]string{{"too_large", "4096", fmt.Sprint(len(payload))}}, res.Rows)
	})

	t.Run("query parameters are values, never SQL", func(t *testing.T) {
		for _, v := range []string{"1.5.0", "", "it's", `back\slash`, "tab\there", "new\nline", "'; DROP TABLE telemetry; --", "{v:String}", "ünïcode ✓"} {
			res, err := db.Query(ctx, "SELECT {v:String} AS v, length({v:String}) AS n", warehouse.WithParams(map[string]string{"v": v}))
			require.NoError(t, err, "value %q", v)
			require.Equal(t, [][]string{{v, fmt.Sprint(len(v))}}, res.Rows, "value %q", v)
		}
		n, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL WHERE ts >= {since:DateTime64(3, 'UTC')} AND device_id = {dev:String}",
			warehouse.WithParams(map[string]string{"since": "2026-11-27 06:01:00", "dev": "dev-a"}))
		require.NoError(t, err)
		require.EqualValues(t, 41, n, "seq 60..100 are at or after 06:01:00")
		_, err = db.Query(ctx, "SELECT {since:DateTime64(3)}", warehouse.WithParams(map[string]string{"since": "yesterday"}))
		require.Error(t, err, "a malformed time is the engine's error, not a silent zero")
		_, err = db.Query(ctx, "SELECT 1", warehouse.WithParams(map[string]string{"bad name": "x"}))
		require.ErrorContains(t, err, "not an identifier")
	})

	t.Run("dashboard rollups fill on insert", func(t *testing.T) {
		res, err := db.Query(ctx, `SELECT minute, countMerge(readings), uniqMerge(devices), round(avgMerge(battery_avg), 2), minMerge(battery_min)
			FROM telemetry_per_minute WHERE region = 'eu-west' GROUP BY minute ORDER BY minute`)
		require.NoError(t, err)
		// dev-a's 100 readings, one a second from 06:00:01, plus 50 redelivered
		// (seq 1..50, all in the first minute), then dev-w's rows at the same times.
		require.NotEmpty(t, res.Rows)
		require.Equal(t, []string{"2026-11-27 06:00:00", "109", "1", "55.5", "55.5"}, res.Rows[0])
	})

	t.Run("latest state per device", func(t *testing.T) {
		rows := []warehouse.StatusRow{
			{DeviceID: "dev-l", Region: "eu-west", TS: time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC), Seq: 1, State: "installing", Firmware: "1.4.2", TargetFirmware: "1.5.0"},
			{DeviceID: "dev-l", Region: "eu-west", TS: time.Date(2026, 11, 27, 6, 0, 9, 0, time.UTC), Seq: 3, State: "updated", Firmware: "1.5.0", TargetFirmware: "1.5.0"},
			// Out of order: older seq arriving last does not win.
			{DeviceID: "dev-l", Region: "eu-west", TS: time.Date(2026, 11, 27, 6, 0, 5, 0, time.UTC), Seq: 2, State: "rebooting", Firmware: "1.4.2", TargetFirmware: "1.5.0"},
		}
		require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, rows))
		res, err := db.Query(ctx, "SELECT state, firmware, last_seq FROM device_latest WHERE device_id = 'dev-l'")
		require.NoError(t, err)
		require.Equal(t, [][]string{{"updated", "1.5.0", "3"}}, res.Rows)
		n, err := db.QueryInt(ctx, "SELECT countMerge(events) FROM status_per_minute WHERE target_firmware = '1.5.0'")
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
	})

	t.Run("table output", func(t *testing.T) {
		res, err := db.Query(ctx, "SELECT * FROM (SELECT 'eu' AS region, toUInt64(12) AS n UNION ALL SELECT 'ap-south', 3) ORDER BY n DESC")
		require.NoError(t, err)
		var b strings.Builder
		require.NoError(t, res.WriteTable(&b))
		require.Equal(t, "region    n\n--------  --\neu        12\nap-south   3\n(2 rows)\n", b.String())
	})
}

func TestWriter(t *testing.T) {
	db := warehousetest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := warehouse.NewWriter[warehouse.TelemetryRow](db, warehouse.TableTelemetry, warehouse.WriterConfig{MaxRows: 64, MaxDelay: 20 * time.Millisecond})
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()

	var committed atomic.Int64
	const n = 1000
	for seq := uint64(1); seq <= n; seq++ {
		require.NoError(t, w.Add(ctx, telemetry("dev-w", seq), func() { committed.Add(1) }))
	}
	require.Eventually(t, func() bool { return committed.Load() == n }, 30*time.Second, 10*time.Millisecond)
	got, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL WHERE device_id = 'dev-w'")
	require.NoError(t, err)
	require.EqualValues(t, n, got, "every row acknowledged is stored")
	st := w.Stats()
	require.EqualValues(t, n, st.Rows)
	require.GreaterOrEqual(t, st.Batches, int64(n/64), "batches are bounded by MaxRows")

	// Rows queued before shutdown are flushed by it.
	for seq := uint64(n + 1); seq <= n+10; seq++ {
		require.NoError(t, w.Add(ctx, telemetry("dev-w", seq), nil))
	}
	cancel()
	require.NoError(t, <-runErr)
	got, err = db.QueryInt(context.Background(), "SELECT count() FROM telemetry FINAL WHERE device_id = 'dev-w'")
	require.NoError(t, err)
	require.EqualValues(t, n+10, got)
	require.ErrorIs(t, w.Add(context.Background(), telemetry("dev-w", 1), nil), warehouse.ErrWriterStopped)
}

func TestWriterRetriesUntilTheTableExists(t *testing.T) {
	db := warehousetest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The table is missing at first: every insert fails, nothing is acknowledged.
	w := warehouse.NewWriter[warehouse.TelemetryRow](db, "telemetry_later", warehouse.WriterConfig{MaxRows: 10, MaxDelay: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	go w.Run(ctx)
	var committed atomic.Int64
	for seq := uint64(1); seq <= 5; seq++ {
		require.NoError(t, w.Add(ctx, telemetry("dev-r", seq), func() { committed.Add(1) }))
	}
	require.Eventually(t, func() bool { return w.Stats().Failures >= 2 && w.Stats().Degraded }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, committed.Load(), "nothing is acknowledged while the warehouse fails")
	// The "outage" ends.
	require.NoError(t, db.Exec(ctx, "CREATE TABLE telemetry_later AS telemetry"))
	require.Eventually(t, func() bool { return committed.Load() == 5 }, 10*time.Second, 5*time.Millisecond)
	require.False(t, w.Stats().Degraded)
}

func TestOpenErrors(t *testing.T) {
	_, err := warehouse.Open(context.Background(), "mysql://x", warehouse.Options{})
	require.ErrorContains(t, err, "unknown scheme")
	// A server that is not there fails at Open, saying what to check.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = warehouse.Open(ctx, "clickhouse://127.0.0.1:1/db?dial_timeout=200ms", warehouse.Options{})
	require.ErrorContains(t, err, "is the server up")
	require.False(t, errors.Is(err, warehouse.ErrClosed))
}

func colNames(r *warehouse.Result) []string {
	var out []string
	for _, c := range r.Columns {
		out = append(out, c.Name)
	}
	return out
}
