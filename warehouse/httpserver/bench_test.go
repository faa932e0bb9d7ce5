package httpserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// BenchmarkInsert compares rows/s into the telemetry table through
// clickhouse-go over HTTP into this server with the in-process embedded
// writer, on the same engine, with the same rows, in the same run:
//
//	go test -run '^$' -bench BenchmarkInsert -benchtime 20x -count 5 ./warehouse/httpserver/
func BenchmarkInsert(b *testing.B) {
	const batch = 10000
	ctx := context.Background()
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	rows := make([]warehouse.TelemetryRow, batch)
	for i := range rows {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		rows[i] = warehouse.TelemetryRow{DeviceID: fmt.Sprintf("dev-%05d", i%1000), Region: []string{"eu-west", "us-east", "ap-south"}[i%3],
			Firmware: "1.5.0", State: "installing", TS: ts, Seq: uint64(i), BatteryPct: 71.5, Charging: i%2 == 0, RSSI: -80,
			TemperatureC: 30.5, UptimeS: int64(i), ReceivedAt: ts}
	}
	over, err := warehouse.Open(ctx, fmt.Sprintf("http://%s:%s@%s/default", writer, writerPass, testAddr), warehouse.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer over.Close()
	for _, c := range []struct {
		name string
		db   *warehouse.DB
	}{{"embedded", testDB}, {"http", over}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := warehouse.Insert(ctx, c.db, warehouse.TableTelemetry, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
