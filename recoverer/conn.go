package recoverer

import (
	"bufio"
	"context"
	"net"
	"net/url"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
)

// bufferedConn reads the MQTT socket through a buffer. paho reads each
// packet's fixed header byte by byte and its body in another read, straight
// from the connection: at 10,000 devices, 5,000 readings a second made
// read system calls the recoverer's largest cost (a CPU profile of
// scripts/bench-recover-latency.sh). Writes, a few commands and audit
// records a second, go straight through.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read reads from the buffer, refilling it from the connection when empty.
func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// dialer returns autopaho's AttemptConnection for plain TCP broker URLs
// (tcp://, mqtt://), or nil to let autopaho dial (TLS, websockets).
func dialer(u *url.URL) func(context.Context, autopaho.ClientConfig, *url.URL) (net.Conn, error) {
	if sch := u.Scheme; (sch != "tcp" && sch != "mqtt") || u.Port() == "" {
		return nil
	}
	return func(ctx context.Context, _ autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		// paho writes a packet in several Writes and keeps them together by
		// locking the connection when it is a sync.Locker.
		return packets.NewThreadSafeConn(&bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}), nil
	}
}
