// Package mqttconn holds the client side's connection mechanisms that
// Sentinel's services and tools share: the dialer autopaho connects
// through, a socket whose writes are queued and written together
// (QueuedConn), and the hand-off that lets a component subscribe on every
// connection without blocking autopaho's OnConnectionUp (ConnUp).
//
// It is a leaf module (stdlib and paho only), so every module may import
// it while service modules still never import each other.
package mqttconn

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
)

// DialConfig says how Dialer wraps the connections it makes.
type DialConfig struct {
	// ReadBuffer is the size of the read buffer in bytes. paho reads each
	// packet's fixed header byte by byte and its body in another read,
	// straight from the connection: at 10,000 devices, 5,000 readings a
	// second made read system calls the recoverer's largest cost (a CPU
	// profile of scripts/bench-recover-latency.sh). Default 0: unbuffered,
	// for a connection that receives little (a device).
	ReadBuffer int
	// QueueWrites queues writes for one writer goroutine (QueuedConn), so
	// the PUBACKs paho sends together leave in one write. For a
	// connection that acknowledges many messages (the ingestor). Default
	// false: writes go straight through.
	QueueWrites bool
}

// Dialer returns autopaho's AttemptConnection for plain TCP broker URLs
// (tcp://, mqtt://, with a port), wrapped as cfg says, or nil for other
// URLs, which autopaho dials itself (TLS, websockets). Each attempt is
// bounded by the client's ConnectTimeout, as autopaho bounds its own
// (it hands AttemptConnection its unbounded context).
func Dialer(u *url.URL, cfg DialConfig) func(context.Context, autopaho.ClientConfig, *url.URL) (net.Conn, error) {
	if sch := u.Scheme; (sch != "tcp" && sch != "mqtt") || u.Port() == "" {
		return nil
	}
	return func(ctx context.Context, cc autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
		if cc.ConnectTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, cc.ConnectTimeout)
			defer cancel()
		}
		return Dial(ctx, u.Host, cfg)
	}
}

// Dial connects to addr (host:port) over TCP and wraps the connection as
// cfg says, ready for paho: writes are serialised, since paho writes a
// packet in several Writes and keeps them together by locking a
// connection that is a sync.Locker.
func Dial(ctx context.Context, addr string, cfg DialConfig) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqttconn: dial %s: %w", addr, err)
	}
	var conn net.Conn = c
	switch {
	case cfg.QueueWrites:
		conn = NewQueuedConn(c, cfg.ReadBuffer)
	case cfg.ReadBuffer > 0:
		conn = &bufferedConn{Conn: c, r: newReader(c, cfg.ReadBuffer)}
	}
	return packets.NewThreadSafeConn(conn), nil
}
