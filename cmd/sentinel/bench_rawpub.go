package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/sentinel-iot/sentinel/proto"
)

// The bench's lean load generator. The paho publisher spends about as much
// CPU per message as the broker or the ingestor (fmt, encoding/json, one
// goroutine blocked on every PUBACK), which on a two-core machine is CPU the
// pipeline under test does not get. This one writes MQTT v5 PUBLISH packets
// by hand on a plain TCP connection: the payload is the JSON proto.Encode
// gives for the same message, appended from constant pieces and the fields
// that vary (device, timestamp, seq, uptime); packets go out in batches,
// up to a window of them in flight (the broker's receive maximum at most),
// and one reader per connection counts PUBACKs by packet ID, checking their
// reason codes. Only a message the broker acknowledged with success counts
// as published, as with paho.

// Constant pieces of the bench's telemetry payload, in encoding/json's
// field order; TestBenchPayload holds them to proto.Encode.
const (
	benchRegion    = "eu-west"
	benchPayload0  = `{"v":1,"device_id":"`
	benchPayload1  = `","ts":"`
	benchPayload2  = `","seq":`
	benchPayload3  = `,"region":"` + benchRegion + `","firmware":"1.4.2","state":"idle","battery_pct":77.5,"charging":false,"rssi_dbm":-71,"temperature_c":31.5,"uptime_s":`
	benchPayload4  = `}`
	benchTopic0    = "fleet/" + benchRegion + "/"
	benchTopic1    = "/telemetry"
	benchDevPrefix = "bench-"
)

// benchMessage is message number id of the bench's stream over devices
// devices, stamped now: the paho publisher encodes it with proto.Encode.
func benchMessage(id int64, devices int, now time.Time) *proto.Telemetry {
	dev := fmt.Sprintf(benchDevPrefix+"%06d", id%int64(devices))
	return &proto.Telemetry{Header: proto.NewHeader(dev, now, uint64(id/int64(devices))+1), Region: benchRegion,
		Firmware: "1.4.2", State: proto.StateIdle, BatteryPct: 77.5, RSSI: -71, TemperatureC: 31.5, UptimeS: id}
}

// appendBenchDevice appends the device ID of message id, as benchMessage names it.
func appendBenchDevice(dst []byte, id int64, devices int) []byte {
	n := id % int64(devices)
	dst = append(dst, benchDevPrefix...)
	for w := int64(100000); w > 1 && n < w; w /= 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, n, 10)
}

// appendBenchPayload appends the JSON of benchMessage(id, devices, t) for
// a t whose wire form is ts, without encoding/json.
func appendBenchPayload(dst []byte, id int64, devices int, ts []byte) []byte {
	dst = append(dst, benchPayload0...)
	dst = appendBenchDevice(dst, id, devices)
	dst = append(dst, benchPayload1...)
	dst = append(dst, ts...)
	dst = append(dst, benchPayload2...)
	dst = strconv.AppendUint(dst, uint64(id/int64(devices))+1, 10)
	dst = append(dst, benchPayload3...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, benchPayload4...)
}

// appendBenchPublish appends a QoS 1 MQTT v5 PUBLISH packet of message id
// with packet ID pid, using scratch for its variable part, and returns both.
func appendBenchPublish(dst, scratch []byte, id int64, devices int, ts []byte, pid uint16) ([]byte, []byte) {
	// Variable header and payload: topic length, topic, packet ID,
	// properties length (none), payload.
	v := append(scratch[:0], 0, 0)
	v = append(v, benchTopic0...)
	v = appendBenchDevice(v, id, devices)
	v = append(v, benchTopic1...)
	binary.BigEndian.PutUint16(v, uint16(len(v)-2))
	v = binary.BigEndian.AppendUint16(v, pid)
	v = append(v, 0)
	v = appendBenchPayload(v, id, devices, ts)
	dst = append(dst, packets.PUBLISH<<4|1<<1)
	dst = binary.AppendUvarint(dst, uint64(len(v))) // MQTT's variable byte integer
	return append(dst, v...), v
}

// rawConn is one MQTT v5 connection of the raw publisher.
type rawConn struct {
	conn   net.Conn
	window int
	// free holds the packet IDs not in flight; taking one is taking a
	// slot of the window.
	free chan uint16
	// inflight[pid] is set while packet ID pid awaits its PUBACK.
	inflight []atomic.Bool
	// acked counts successful PUBACKs into the bench's published count.
	acked *atomic.Int64
	dead  chan struct{} // closed when the reader stops; err says why
	err   error
}

// dialRaw connects to broker as clientID with a clean session and starts
// the PUBACK reader. The window is the broker's receive maximum, at most max.
func dialRaw(ctx context.Context, broker, clientID string, maxWindow int, acked *atomic.Int64) (*rawConn, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, fmt.Errorf("raw publisher: parse broker URL: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("raw publisher: dial %s: %w", u.Host, err)
	}
	cp := packets.NewControlPacket(packets.CONNECT)
	cp.Content = &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: clientID, CleanStart: true,
		KeepAlive: 600, Properties: &packets.Properties{}} // no PINGREQ: a bench pauses for seconds, not minutes
	if _, err := cp.WriteTo(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raw publisher: send CONNECT: %w", err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	ack, err := packets.ReadPacket(br)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("raw publisher: read CONNACK: %w", err)
	}
	ca, ok := ack.Content.(*packets.Connack)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("raw publisher: got %s, want CONNACK", ack.PacketType())
	}
	if ca.ReasonCode != packets.ConnackSuccess {
		conn.Close()
		return nil, fmt.Errorf("raw publisher: connect refused: %s (0x%02x)", ca.Reason(), ca.ReasonCode)
	}
	window := 65535
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		window = int(*ca.Properties.ReceiveMaximum)
	}
	window = min(window, maxWindow)
	c := &rawConn{conn: conn, window: window, free: make(chan uint16, window), inflight: make([]atomic.Bool, 65536),
		acked: acked, dead: make(chan struct{})}
	for pid := 1; pid <= window; pid++ {
		c.free <- uint16(pid)
	}
	go c.read(br)
	return c, nil
}

// read counts PUBACKs until the connection fails or closes.
func (c *rawConn) read(br *bufio.Reader) {
	defer close(c.dead)
	c.err = c.readLoop(br)
}

func (c *rawConn) readLoop(br *bufio.Reader) error {
	var body []byte
	for {
		h, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("raw publisher: read packet: %w", err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("raw publisher: read packet length: %w", err)
		}
		if n > 1<<20 {
			return fmt.Errorf("raw publisher: broker sent a packet of %d bytes (over 1 MiB): not MQTT as this reader knows it", n)
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return fmt.Errorf("raw publisher: read packet: %w", err)
		}
		switch h >> 4 {
		case packets.PUBACK:
			if n < 2 {
				return errors.New("raw publisher: PUBACK without packet ID")
			}
			pid := binary.BigEndian.Uint16(body)
			if n > 2 && body[2] >= 0x80 {
				return fmt.Errorf("raw publisher: PUBACK for packet %d: reason code 0x%02x", pid, body[2])
			}
			if !c.inflight[pid].CompareAndSwap(true, false) {
				return fmt.Errorf("raw publisher: PUBACK for packet %d, which is not in flight", pid)
			}
			c.acked.Add(1)
			c.free <- pid
		case packets.PINGRESP:
		case packets.DISCONNECT:
			reason := byte(0)
			if n > 0 {
				reason = body[0]
			}
			return fmt.Errorf("raw publisher: broker disconnected: reason code 0x%02x", reason)
		default:
			return fmt.Errorf("raw publisher: unexpected packet type %d", h>>4)
		}
	}
}

// close sends DISCONNECT, closes the connection and waits for the reader.
func (c *rawConn) close() {
	c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.conn.Write([]byte{packets.DISCONNECT << 4, 0})
	c.conn.Close()
	<-c.dead
}

// failed returns why the reader stopped.
func (c *rawConn) failed() error {
	if c.err != nil {
		return c.err
	}
	return errors.New("raw publisher: connection closed")
}

// publish sends n messages at rate msg/s (0: as fast as the window lets),
// taking message numbers from next, and returns once every one is
// acknowledged.
func (c *rawConn) publish(ctx context.Context, n int, rate float64, devices int, next *atomic.Int64) error {
	out := make([]byte, 0, 64<<10)
	var scratch []byte
	var ts []byte
	var tsMilli int64 = -1
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		_, err := c.conn.Write(out)
		out = out[:0]
		if err != nil {
			return fmt.Errorf("raw publisher: write: %w", err)
		}
		return nil
	}
	start := time.Now()
	for sent := 0; sent < n; {
		due := n
		if rate > 0 {
			due = min(n, int(time.Since(start).Seconds()*rate))
			if due <= sent {
				if err := flush(); err != nil {
					return err
				}
				// Pacing a load generator, not synchronisation.
				time.Sleep(time.Millisecond)
				continue
			}
		}
		for ; sent < due; sent++ {
			var pid uint16
			select {
			case pid = <-c.free:
			default:
				if err := flush(); err != nil {
					return err
				}
				select {
				case pid = <-c.free:
				case <-c.dead:
					return c.failed()
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			now := time.Now()
			if ms := now.UnixMilli(); ms != tsMilli {
				tsMilli = ms
				ts = now.UTC().AppendFormat(ts[:0], proto.TimeFormat)
			}
			id := next.Add(1) - 1
			c.inflight[pid].Store(true)
			out, scratch = appendBenchPublish(out, scratch, id, devices, ts, pid)
			if len(out) >= 32<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	// Every packet ID back in the free list: everything acknowledged.
	ids := make([]uint16, 0, c.window)
	defer func() {
		for _, pid := range ids {
			c.free <- pid
		}
	}()
	for len(ids) < c.window {
		select {
		case pid := <-c.free:
			ids = append(ids, pid)
		case <-c.dead:
			return c.failed()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// rawPublisher is the raw load generator's connections.
type rawPublisher struct {
	conns []*rawConn
}

func dialRawPublisher(ctx context.Context, broker string, conns, window int, acked *atomic.Int64) (*rawPublisher, error) {
	p := &rawPublisher{}
	for i := range conns {
		c, err := dialRaw(ctx, broker, fmt.Sprintf("bench-raw-%d-%d", os.Getpid(), i), window, acked)
		if err != nil {
			p.close()
			return nil, err
		}
		p.conns = append(p.conns, c)
	}
	return p, nil
}

// publish sends n messages at rate msg/s over all connections, each
// taking its share of both.
func (p *rawPublisher) publish(ctx context.Context, n, rate, devices int, next *atomic.Int64) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.conns))
	k := len(p.conns)
	for i, c := range p.conns {
		share := n / k
		if i < n%k {
			share++
		}
		r := float64(rate) * float64(share) / float64(max(n, 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.publish(ctx, share, r, devices, next)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *rawPublisher) close() {
	for _, c := range p.conns {
		c.close()
	}
	p.conns = nil
}
