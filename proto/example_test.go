package proto_test

import (
	"fmt"

	"github.com/sentinel-iot/sentinel/proto"
)

// ExampleDecode decodes what a consumer of fleet/+/+/+ receives: the topic
// picks the message kind and must agree with the payload's device and region.
// A rejected payload yields a Reason code to count and store.
func ExampleDecode() {
	topic := proto.TelemetryTopic("eu-west", "dev-1")
	payload := []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:00.123Z","seq":7,
		"region":"eu-west","firmware":"2.4.1","state":"partial","battery_pct":87.5,
		"charging":false,"rssi_dbm":-71,"temperature_c":41.2,"uptime_s":3600}`)

	t, m, err := proto.Decode(topic, payload, 0)
	if err != nil {
		fmt.Println("rejected:", proto.Reason(err))
		return
	}
	tel := m.(*proto.Telemetry)
	fmt.Println(t.Region, t.Device, t.Kind, tel.State, tel.State.Failed(), tel.BatteryPct)

	// The same device claims a battery level of 140%.
	bad := []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:01.000Z","seq":8,
		"region":"eu-west","firmware":"2.4.1","state":"partial","battery_pct":140,
		"charging":false,"rssi_dbm":-71,"temperature_c":41.2,"uptime_s":3601}`)
	_, _, err = proto.Decode(topic, bad, 0)
	fmt.Println(proto.Reason(err))
	fmt.Println(err)

	// A reading that leaves out (or nulls) a field is rejected, never read as zero.
	partial := []byte(`{"v":1,"device_id":"dev-1","ts":"2024-05-01T10:00:02.000Z","seq":9,
		"region":"eu-west","firmware":"2.4.1","state":"partial","battery_pct":87,
		"charging":null,"rssi_dbm":-71,"temperature_c":41.2,"uptime_s":3602}`)
	_, _, err = proto.Decode(topic, partial, 0)
	fmt.Println(err)

	// A payload published on another device's topic.
	_, _, err = proto.Decode(proto.TelemetryTopic("eu-west", "dev-2"), payload, 0)
	fmt.Println(proto.Reason(err))
	// Output:
	// eu-west dev-1 telemetry partial true 87.5
	// out_of_range
	// proto: out of range: field "battery_pct": 140 not in 0..100
	// proto: missing field: field "charging": null; a value is required
	// topic_mismatch
}
