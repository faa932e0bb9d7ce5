package broker_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

// FuzzConnection feeds arbitrary bytes to the broker through a real TCP
// connection: mochi's packet decoder with Sentinel's auth, ACL and limits
// hooks behind it. A panic in any client goroutine fails the run; after
// each input a well-behaved device must still connect and publish. The
// seeds (run by `go test`) are valid and invalid sessions: run more with
// `go test -fuzz FuzzConnection ./broker`.
func FuzzConnection(f *testing.F) {
	b := startSecure(f, func(c *broker.Config) {
		c.MaxPacketSize = 4 << 10
		c.Limits.DeviceRate = limits.Rate{PerSecond: 1000, Burst: 5}
	})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sub := func(filter string) []byte {
		var buf bytes.Buffer
		_ = (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}).SubscribeEncode(&buf)
		return buf.Bytes()
	}
	dev := connectPacket("dev-1", "dev-1")
	own := "fleet/eu-west/dev-1/telemetry"
	f.Add(cat(dev, publishPacket(own, 1, []byte(`{"v":1}`))))
	f.Add(cat(dev, publishPacket("fleet/eu-west/dev-2/telemetry", 1, nil)))
	f.Add(cat(dev, publishPacket("fleet/+/dev-1/telemetry", 1, nil)))
	f.Add(cat(dev, publishPacket("$SYS/x", 1, nil)))
	f.Add(cat(dev, sub("#"), sub("$share/g/fleet/+/dev-1/cmd"), sub("fleet/+/dev-1/cmd")))
	f.Add(cat(dev, bytes.Repeat(publishPacket(own, 2, []byte("x")), 20)))
	f.Add(cat(dev, publishPacket(own, 3, make([]byte, 8<<10))))
	f.Add(cat(dev, []byte{0x30, 0xff, 0xff, 0xff, 0x7f}))
	f.Add(connectPacket("svc", "a/b"))
	f.Add(connectPacket("svc", "+"))
	f.Add(connectPacket("nobody", "nobody"))
	f.Add(connectPacket("", "anon"))
	f.Add(cat(dev, dev))
	f.Add([]byte{0x10, 0x00})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(cat(dev, []byte{0xe0, 0x00}))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		_, _ = c.Write(data) // the broker may hang up first
		// End the input: the broker sees EOF after it and closes.
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the broker kept the connection open 5s after its input ended")
		}

		// The broker still serves a well-behaved device.
		r := dialRaw(t, b, "dev-2", "dev-2")
		r.write(publishPacket("fleet/eu-west/dev-2/telemetry", 1, []byte("alive")))
		ack := r.read()
		require.Equal(t, packets.Puback, ack.FixedHeader.Type)
		require.Zero(t, ack.ReasonCode)
		r.c.Close()
	})
}
