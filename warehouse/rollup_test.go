package warehouse_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// What a dashboard reads from the per-minute rollups as the number of
// readings and of status events in a minute (README, "Analytics").
const (
	dashboardReadings = "uniqExactMerge(unique_readings)"
	dashboardEvents   = "uniqExactMerge(unique_events)"
)

// redeliveryRows is three devices' readings and status events over two
// minutes and two firmware versions, and, from an independent count, how
// many distinct readings and events each (minute, region, firmware) holds.
func redeliveryRows() (tel []warehouse.TelemetryRow, st []warehouse.StatusRow, readings, events map[string]int) {
	base := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	readings, events = map[string]int{}, map[string]int{}
	for d, dev := range []string{"dev-r1", "dev-r2", "dev-r3"} {
		region, fw := "eu-west", "1.4.2"
		if d == 2 {
			region, fw = "ap-south", "1.5.0"
		}
		for seq := uint64(1); seq <= 90; seq++ {
			ts := base.Add(time.Duration(seq) * time.Second)
			minute := ts.Truncate(time.Minute).Format(time.DateTime)
			tel = append(tel, warehouse.TelemetryRow{DeviceID: dev, Region: region, Firmware: fw, State: "idle", TS: ts, Seq: seq,
				BatteryPct: 50, RSSI: -70, ReceivedAt: ts})
			readings[minute+"|"+region+"|"+fw]++
			if seq%10 == 0 {
				st = append(st, warehouse.StatusRow{DeviceID: dev, Region: region, TS: ts, Seq: seq + 1000, State: "downloading",
					Firmware: fw, TargetFirmware: "1.6.0", ReceivedAt: ts})
				events[minute+"|"+region+"|1.6.0"]++
			}
		}
	}
	return tel, st, readings, events
}

// redeliver inserts every row twice, the second time in batches cut
// differently, as an ingestor does after a stall: the broker redelivers
// everything in flight and the new batches need not match the old.
func redeliver(t *testing.T, db *warehouse.DB, tel []warehouse.TelemetryRow, st []warehouse.StatusRow) {
	t.Helper()
	redeliverWith(t, db, tel, st, func(rows []warehouse.TelemetryRow) error {
		return warehouse.Insert(context.Background(), db, warehouse.TableTelemetry, rows)
	})
}

// redeliverWith is redeliver, inserting telemetry with insertTel.
func redeliverWith(t *testing.T, db *warehouse.DB, tel []warehouse.TelemetryRow, st []warehouse.StatusRow, insertTel func([]warehouse.TelemetryRow) error) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, insertTel(tel))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, st))
	for i := 0; i < len(tel); i += 47 {
		require.NoError(t, insertTel(tel[i:min(i+47, len(tel))]))
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, st[:len(st)/2]))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, st[len(st)/2:]))
}

// rollupCounts reads what a dashboard shows per (minute, region, firmware),
// and the raw inserted counts beside it.
func rollupCounts(t *testing.T, db *warehouse.DB) (readings, events, rawReadings, rawEvents map[string]int) {
	t.Helper()
	ctx := context.Background()
	read := func(sql string) (shown, raw map[string]int) {
		res, err := db.Query(ctx, sql)
		require.NoError(t, err)
		shown, raw = map[string]int{}, map[string]int{}
		for _, r := range res.Rows {
			var n, m int
			_, err := fmt.Sscan(r[3], &n)
			require.NoError(t, err)
			_, err = fmt.Sscan(r[4], &m)
			require.NoError(t, err)
			shown[r[0]+"|"+r[1]+"|"+r[2]], raw[r[0]+"|"+r[1]+"|"+r[2]] = n, m
		}
		return shown, raw
	}
	readings, rawReadings = read(`SELECT minute, region, firmware, ` + dashboardReadings + `, countMerge(readings)
		FROM telemetry_per_minute GROUP BY minute, region, firmware`)
	events, rawEvents = read(`SELECT minute, region, target_firmware, ` + dashboardEvents + `, countMerge(events)
		FROM status_per_minute GROUP BY minute, region, target_firmware`)
	return readings, events, rawReadings, rawEvents
}

func double(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = 2 * v
	}
	return out
}

// TestRollupsCountRedeliveryOnce: every reading and status event inserted
// twice (a redelivery after a consumer stall) is counted once by what a
// dashboard reads from the per-minute rollups, as telemetry FINAL counts
// it; the raw insert counts beside it see both copies.
func TestRollupsCountRedeliveryOnce(t *testing.T) {
	ctx := context.Background()
	db := warehousetest.Open(t)
	// Keep both copies on disk (no background merge may collapse them
	// first), as they are until the engine gets to merging.
	for _, table := range []string{warehouse.TableTelemetry, warehouse.TableStatusEvents} {
		require.NoError(t, db.Exec(ctx, "SYSTEM STOP MERGES "+table))
	}
	tel, st, wantReadings, wantEvents := redeliveryRows()
	redeliver(t, db, tel, st)

	raw, err := db.QueryInt(ctx, "SELECT count() FROM telemetry")
	require.NoError(t, err)
	require.EqualValues(t, 2*len(tel), raw, "both copies are stored")
	final, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL")
	require.NoError(t, err)
	require.EqualValues(t, len(tel), final)

	readings, events, rawReadings, rawEvents := rollupCounts(t, db)
	require.Equal(t, wantReadings, readings, "readings per minute count a redelivered reading once")
	require.Equal(t, wantEvents, events, "status events per minute count a redelivered event once")
	require.Equal(t, double(wantReadings), rawReadings, "readings still counts rows inserted")
	require.Equal(t, double(wantEvents), rawEvents, "events still counts rows inserted")

	// Merging the rollup's parts changes nothing.
	require.NoError(t, db.Exec(ctx, "OPTIMIZE TABLE telemetry_per_minute FINAL"))
	require.NoError(t, db.Exec(ctx, "OPTIMIZE TABLE status_per_minute FINAL"))
	readings, events, _, _ = rollupCounts(t, db)
	require.Equal(t, wantReadings, readings, "after a merge")
	require.Equal(t, wantEvents, events, "after a merge")
}

// TestRollupBackfillOnUpgrade: a warehouse that stored redelivered rows
// before migration 10 counts them once after it, and keeps doing so for
// rows stored after it.
func TestRollupBackfillOnUpgrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := warehouse.Open(ctx, "chdb://"+t.TempDir(), warehouse.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.MigrateTo(ctx, 9))
	tel, st, wantReadings, wantEvents := redeliveryRows()
	// Written as the ingestor of migration 9's day wrote them: without
	// the columns later migrations add (11's device physics).
	redeliverWith(t, db, tel[:len(tel)/2], st[:len(st)/2], func(rows []warehouse.TelemetryRow) error {
		return insertPreV11Telemetry(ctx, db, rows)
	})

	require.NoError(t, db.Migrate(ctx))
	redeliver(t, db, tel[len(tel)/2:], st[len(st)/2:])
	redeliver(t, db, tel[:10], st[:2]) // and some of the old ones once more

	readings, events, _, _ := rollupCounts(t, db)
	require.Equal(t, wantReadings, readings)
	require.Equal(t, wantEvents, events)
	n, err := db.QueryInt(ctx, "SELECT max(version) FROM schema_migrations FINAL")
	require.NoError(t, err)
	require.EqualValues(t, len(warehouse.Migrations), n)
}

// insertPreV11Telemetry inserts rows with the telemetry columns of
// migration 1, the ones a warehouse before migration 11 has.
func insertPreV11Telemetry(ctx context.Context, db *warehouse.DB, rows []warehouse.TelemetryRow) error {
	var b strings.Builder
	b.WriteString("INSERT INTO telemetry (device_id, region, firmware, state, ts, seq, battery_pct, charging, rssi_dbm, temperature_c, uptime_s, received_at) VALUES ")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		// The test's strings are plain identifiers: no quoting needed.
		fmt.Fprintf(&b, "('%s', '%s', '%s', '%s', fromUnixTimestamp64Milli(%d), %d, %g, %t, %d, %g, %d, fromUnixTimestamp64Milli(%d))",
			r.DeviceID, r.Region, r.Firmware, r.State, r.TS.UnixMilli(), r.Seq, r.BatteryPct, r.Charging, r.RSSI, r.TemperatureC, r.UptimeS, r.ReceivedAt.UnixMilli())
	}
	return db.Exec(ctx, b.String())
}
