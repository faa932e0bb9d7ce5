// Package rawclient is a small MQTT v5 client for the broker's crash test
// and benchmark: one TCP connection, QoS 0 and 1, pipelined publishes whose
// PUBACKs are reported per message, and a message callback that runs
// before the PUBACK is sent. It encodes and decodes with mochi's packets
// package and writes through mqttconn.QueuedConn, and costs two goroutines
// and a few kilobytes per connection, so a benchmark process can hold
// 10,000 device connections without taking the CPU the broker under test
// needs. Services use paho; this is not for them.
package rawclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sentinel-iot/sentinel/mqttconn"
)

var (
	// ErrClosed means the connection is gone; Err says why.
	ErrClosed = errors.New("rawclient: connection closed")
	// ErrRefused means the broker answered CONNECT, SUBSCRIBE or PUBLISH
	// with a failure reason code.
	ErrRefused = errors.New("rawclient: refused by the broker")
)

// Options configures a connection.
type Options struct {
	// ClientID is the MQTT client identifier. Required.
	ClientID string
	// CleanStart discards the session the broker holds for ClientID.
	CleanStart bool
	// SessionExpiry is how long, in seconds, the broker keeps the session
	// after the connection ends. Default 0: it ends with the connection.
	SessionExpiry uint32
	// KeepAlive in seconds. Default 60. The client sends no PINGREQ, so a
	// connection idle for longer is closed by the broker.
	KeepAlive uint16
	// ReceiveMaximum is how many QoS 1 messages the broker may have in
	// flight to this client (MQTT 5 Receive Maximum). Default 0: the
	// protocol's 65535.
	ReceiveMaximum uint16
	// OnMessage receives every PUBLISH from the broker, on the connection's
	// reader goroutine; a QoS 1 message is acknowledged after it returns.
	OnMessage func(topic string, payload []byte, dup bool)
	// MaxInflight caps the QoS 1 publishes in flight below the broker's
	// receive maximum. Default 0: the broker's.
	MaxInflight int
	// WriteBufferSize is the size of the buffer PublishBuffered fills
	// before it writes. Default 4096 bytes.
	WriteBufferSize int
}

// Client is one MQTT v5 connection. Its two goroutines, the reader and
// the connection's writer (mqttconn.QueuedConn's), are owned by the
// Client: they run from Dial until the connection ends, and Close waits
// for them.
type Client struct {
	conn net.Conn             // the TCP connection
	qc   *mqttconn.QueuedConn // conn with queued writes: every packet leaves through it
	opts Options

	// Packets are encoded into bw, which hands them to qc when it fills or
	// is flushed: PublishBuffered leaves them there, every other write
	// flushes. qc's writes never block, so neither does a write here: the
	// reader sends its PUBACKs itself, and a broker blocked writing to us
	// while we block writing to it cannot deadlock the connection (mochi's
	// read loop writes synchronously).
	wmu sync.Mutex // serialises writes to bw
	bw  *bufio.Writer

	mu      sync.Mutex
	nextID  uint16
	pending map[uint16]func(error) // QoS 1 publishes and SUBSCRIBE awaiting their ack
	window  chan struct{}          // one slot per publish in flight: the broker's receive maximum
	err     error

	done chan struct{} // closed when reader and writer have exited
}

// Dial connects to addr (host:port), sends CONNECT and waits for CONNACK.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.ClientID == "" {
		return nil, errors.New("rawclient: Options.ClientID is empty")
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 60
	}
	if opts.WriteBufferSize <= 0 {
		opts.WriteBufferSize = 4096
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rawclient: dial %s: %w", addr, err)
	}
	c := &Client{conn: conn, qc: mqttconn.NewQueuedConn(conn, 0), opts: opts, pending: map[uint16]func(error){},
		done: make(chan struct{})}
	c.bw = bufio.NewWriterSize(c.qc, opts.WriteBufferSize)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            opts.CleanStart,
			Keepalive:        opts.KeepAlive,
			ClientIdentifier: opts.ClientID,
		},
		Properties: packets.Properties{SessionExpiryInterval: opts.SessionExpiry, SessionExpiryIntervalFlag: opts.SessionExpiry > 0,
			ReceiveMaximum: opts.ReceiveMaximum},
	}
	if err := c.write(&pk, true); err != nil {
		c.qc.Close()
		return nil, fmt.Errorf("rawclient: send CONNECT as %s: %w", opts.ClientID, err)
	}
	br := bufio.NewReaderSize(c.qc, 4096)
	ack, err := readPacket(br)
	if err != nil {
		c.qc.Close()
		return nil, fmt.Errorf("rawclient: read CONNACK for %s: %w", opts.ClientID, err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		c.qc.Close()
		return nil, fmt.Errorf("rawclient: %s: first packet is type %d, not CONNACK", opts.ClientID, ack.FixedHeader.Type)
	}
	if ack.ReasonCode >= 0x80 {
		c.qc.Close()
		return nil, fmt.Errorf("rawclient: CONNECT as %s: reason 0x%02x: %w", opts.ClientID, ack.ReasonCode, ErrRefused)
	}
	window := int(ack.Properties.ReceiveMaximum)
	if window == 0 {
		window = 65535
	}
	if opts.MaxInflight > 0 {
		window = min(window, opts.MaxInflight)
	}
	c.window = make(chan struct{}, window)
	// Unhook ctx before clearing the deadline: a ctx ending in between
	// would otherwise set it again and kill the connection just handed out.
	if !stop() {
		c.qc.Close()
		return nil, fmt.Errorf("rawclient: connect %s: %w", opts.ClientID, ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	go c.read(br)
	return c, nil
}

// Publish sends a message. For QoS 1 it first takes a slot of the broker's
// receive maximum (waiting for one while ctx lasts), and done runs on the
// reader goroutine (so it must not block, nor publish) with the PUBACK's
// verdict, freeing the slot when it returns: nil when the broker accepted
// the message, or an error when it refused it or the connection ended
// first. For QoS 0, done (if not nil) runs once the packet is queued.
// done runs exactly once when Publish returns nil, and never when it
// returns an error.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos byte, done func(error)) error {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: 5,
		TopicName:       topic,
		Payload:         payload,
	}
	if qos == 0 {
		if err := c.write(&pk, true); err != nil {
			return fmt.Errorf("rawclient: publish to %s: %w", topic, err)
		}
		if done != nil {
			done(nil)
		}
		return nil
	}
	return c.publish1(ctx, &pk, done, true)
}

// PublishBuffered is Publish at QoS 1 for a load generator: the packet
// waits in the write buffer (Options.WriteBufferSize) until the buffer
// fills, Flush is called, or a publish has to wait for a slot of the
// receive window, when it flushes first so that what it waits for is on
// its way. A batch of packets then costs one write, not one each; call
// Flush after the last.
func (c *Client) PublishBuffered(ctx context.Context, topic string, payload []byte, done func(error)) error {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5,
		TopicName:       topic,
		Payload:         payload,
	}
	return c.publish1(ctx, &pk, done, false)
}

// Flush writes what PublishBuffered left in the write buffer.
func (c *Client) Flush() error {
	c.wmu.Lock()
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return fmt.Errorf("rawclient: flush: %w", err)
	}
	return nil
}

// publish1 sends a QoS 1 publish once a slot of the window is free,
// flushing first when it must wait for one (unless flush, when nothing
// waits in the buffer).
func (c *Client) publish1(ctx context.Context, pk *packets.Packet, done func(error), flush bool) error {
	select {
	case c.window <- struct{}{}:
	default:
		if !flush {
			if err := c.Flush(); err != nil {
				return err
			}
		}
		select {
		case c.window <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return c.Err()
		}
	}
	id, err := c.register(func(err error) {
		// The slot is freed once done has returned, so a caller counting
		// its own publishes in done never sees more than the window.
		defer func() { <-c.window }()
		if done != nil {
			done(err)
		}
	})
	if err != nil {
		<-c.window
		return err
	}
	pk.PacketID = id
	if err := c.write(pk, flush); err != nil {
		c.fail(err) // fails the registered exchange: done reports it
	}
	return nil
}

// PublishWait publishes at QoS 1 and waits for the PUBACK.
func (c *Client) PublishWait(ctx context.Context, topic string, payload []byte) error {
	res := make(chan error, 1)
	if err := c.Publish(ctx, topic, payload, 1, func(err error) { res <- err }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe subscribes to filter at qos and waits for the SUBACK.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	res := make(chan error, 1)
	id, err := c.register(func(err error) { res <- err })
	if err != nil {
		return err
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5,
		PacketID:        id,
		Filters:         packets.Subscriptions{{Filter: filter, Qos: qos}},
	}
	if err := c.write(&pk, true); err != nil {
		c.fail(err)
		return fmt.Errorf("rawclient: subscribe to %s: %w", filter, err)
	}
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("rawclient: subscribe to %s: %w", filter, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends DISCONNECT (keeping the session if it has an expiry),
// closes the connection and waits for the client's goroutines.
func (c *Client) Close() error {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5}
	_ = c.write(&pk, true)
	c.end(ErrClosed, true)
	<-c.done
	return nil
}

// Abort closes the connection without DISCONNECT, as a crash would, and
// waits for the client's goroutines.
func (c *Client) Abort() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the connection ended, once Done is closed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ErrClosed
	}
	return c.err
}

// register reserves a free packet ID for an exchange awaiting its ack.
func (c *Client) register(fn func(error)) (uint16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	for range 65535 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.pending[c.nextID]; !used {
			c.pending[c.nextID] = fn
			return c.nextID, nil
		}
	}
	return 0, errors.New("rawclient: no free packet ID")
}

// resolve completes the exchange of packet ID id.
func (c *Client) resolve(id uint16, err error) {
	c.mu.Lock()
	fn := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if fn != nil {
		fn(err)
	}
}

// fail ends the connection with err at once, as a crash would; pending
// exchanges fail with it.
func (c *Client) fail(err error) { c.end(err, false) }

// end ends the connection with err, once, after writing what is queued
// when flush is set; pending exchanges fail with err.
func (c *Client) end(err error, flush bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = map[uint16]func(error){}
	c.mu.Unlock()
	if flush {
		c.wmu.Lock()
		_ = c.bw.Flush() // to qc, which does not block
		c.wmu.Unlock()
		c.qc.Close() // writes what is queued, then closes
	} else {
		c.conn.Close() // qc's writer fails on its next write, and stops
	}
	for _, fn := range pending {
		fn(fmt.Errorf("%w: %w", ErrClosed, err))
	}
}

// write encodes pk into the write buffer and, when flush is set, hands
// what the buffer holds to the connection's writer.
func (c *Client) write(pk *packets.Packet, flush bool) error {
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("rawclient: cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.bw.Write(buf.Bytes()); err != nil {
		return err
	}
	if flush {
		return c.bw.Flush()
	}
	return nil
}

// read reads and handles packets until the connection ends. It queues
// each PUBACK for the connection's writer, which sends what is queued
// together in one write.
func (c *Client) read(br *bufio.Reader) {
	defer close(c.done)
	defer c.qc.Close() // and wait for the writer
	for {
		pk, err := readPacket(br)
		if err != nil {
			c.fail(err)
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Puback:
			var err error
			if pk.ReasonCode >= 0x80 {
				err = fmt.Errorf("PUBACK reason 0x%02x: %w", pk.ReasonCode, ErrRefused)
			}
			c.resolve(pk.PacketID, err)
		case packets.Suback:
			var err error
			if len(pk.ReasonCodes) == 0 || pk.ReasonCodes[0] >= 0x80 {
				err = fmt.Errorf("SUBACK reasons %v: %w", pk.ReasonCodes, ErrRefused)
			}
			c.resolve(pk.PacketID, err)
		case packets.Publish:
			if c.opts.OnMessage != nil {
				c.opts.OnMessage(pk.TopicName, pk.Payload, pk.FixedHeader.Dup)
			}
			if pk.FixedHeader.Qos > 0 {
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 5, PacketID: pk.PacketID}
				if err := c.write(&ack, true); err != nil { // queued: never blocks the reader
					c.fail(err)
					return
				}
			}
		case packets.Disconnect:
			c.fail(fmt.Errorf("broker sent DISCONNECT, reason 0x%02x", pk.ReasonCode))
			return
		}
	}
}

// readPacket reads and decodes one packet.
func readPacket(br *bufio.Reader) (packets.Packet, error) {
	var pk packets.Packet
	b, err := br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, fmt.Errorf("decode fixed header: %w", err)
	}
	n, _, err := packets.DecodeLength(br)
	if err != nil {
		return pk, fmt.Errorf("decode remaining length: %w", err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = 5
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	if err != nil {
		return pk, fmt.Errorf("decode packet type %d: %w", pk.FixedHeader.Type, err)
	}
	return pk, nil
}
