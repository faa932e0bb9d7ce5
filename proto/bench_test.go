package proto_test

import (
	"testing"

	"github.com/sentinel-iot/sentinel/proto"
)

// telemetryPayload is a typical device reading, as the ingestor receives it.
var telemetryPayload = []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:00.123Z","seq":7,"region":"eu-west","firmware":"2.4.1","state":"installing","battery_pct":87.5,"charging":true,"rssi_dbm":-71,"temperature_c":41.25,"uptime_s":3600}`)

// BenchmarkDecodeTelemetry measures the decoder the ingestor runs on every
// message: a valid telemetry payload, decoded and validated.
func BenchmarkDecodeTelemetry(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(telemetryPayload)))
	for b.Loop() {
		if _, err := proto.DecodeTelemetry(telemetryPayload); err != nil {
			b.Fatal(err)
		}
	}
}
