package ingest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// The bench's telemetry stream: message number id goes to device id %
// devices with sequence number id / devices + 1. The raw publisher builds
// each payload from constant pieces and the fields that vary (device,
// timestamp, seq, uptime), in encoding/json's field order, without
// encoding/json; TestPayload holds it to proto.Encode of message.
const (
	region    = "eu-west"
	payload0  = `{"v":1,"device_id":"`
	payload1  = `","ts":"`
	payload2  = `","seq":`
	payload3  = `,"region":"` + region + `","firmware":"1.4.2","state":"idle","battery_pct":77.5,"charging":false,"rssi_dbm":-71,"temperature_c":31.5,"uptime_s":`
	payload4  = `}`
	topic0    = "fleet/" + region + "/"
	topic1    = "/telemetry"
	devPrefix = "bench-"
)

// message is message number id of the stream over devices devices,
// stamped now: the paho publisher encodes it with proto.Encode.
func message(id int64, devices int, now time.Time) *proto.Telemetry {
	dev := fmt.Sprintf(devPrefix+"%06d", id%int64(devices))
	return &proto.Telemetry{Header: proto.NewHeader(dev, now, uint64(id/int64(devices))+1), Region: region,
		Firmware: "1.4.2", State: proto.StateIdle, BatteryPct: 77.5, RSSI: -71, TemperatureC: 31.5, UptimeS: id}
}

// appendDevice appends the device ID of message id, as message names it.
func appendDevice(dst []byte, id int64, devices int) []byte {
	n := id % int64(devices)
	dst = append(dst, devPrefix...)
	for w := int64(100000); w > 1 && n < w; w /= 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, n, 10)
}

// appendTopic appends the telemetry topic of message id's device.
func appendTopic(dst []byte, id int64, devices int) []byte {
	dst = append(dst, topic0...)
	dst = appendDevice(dst, id, devices)
	return append(dst, topic1...)
}

// appendPayload appends the JSON of message(id, devices, t) for a t whose
// wire form is ts.
func appendPayload(dst []byte, id int64, devices int, ts []byte) []byte {
	dst = append(dst, payload0...)
	dst = appendDevice(dst, id, devices)
	dst = append(dst, payload1...)
	dst = append(dst, ts...)
	dst = append(dst, payload2...)
	dst = strconv.AppendUint(dst, uint64(id/int64(devices))+1, 10)
	dst = append(dst, payload3...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, payload4...)
}
