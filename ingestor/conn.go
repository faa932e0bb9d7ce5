package ingestor

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// batchedConn cuts paho's system calls, which bound the ingestor at high
// rates: paho reads each packet's header and body from the socket unbuffered
// (two reads per message) and writes each PUBACK on its own. Reads go
// through a buffer; writes are queued and written by one goroutine, so the
// acks paho flushes together leave in one write. Order is kept; Close
// writes what is queued before closing (paho's DISCONNECT is the last
// thing written).
type batchedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	pending []byte
	err     error
	kick    chan struct{}
	closing chan struct{}
	flushed chan struct{}
	once    sync.Once
}

func newBatchedConn(c net.Conn) *batchedConn {
	b := &batchedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), kick: make(chan struct{}, 1),
		closing: make(chan struct{}), flushed: make(chan struct{})}
	go b.writer()
	return b
}

func (b *batchedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *batchedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.pending = append(b.pending, p...)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// writer writes what is queued whenever there is something, until Close.
func (b *batchedConn) writer() {
	defer close(b.flushed)
	var spare []byte
	for {
		select {
		case <-b.kick:
		case <-b.closing:
			return
		}
		b.mu.Lock()
		out := b.pending
		if len(out) == 0 {
			b.mu.Unlock()
			continue
		}
		b.pending = spare[:0] // spare is the buffer written last time, not out
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		if err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
			b.Conn.Close() // the reader sees it and paho reconnects
		}
		spare = out
	}
}

// Close writes what is still queued, with a short deadline, and closes.
func (b *batchedConn) Close() error {
	var err error
	b.once.Do(func() {
		close(b.closing)
		<-b.flushed
		b.mu.Lock()
		out, werr := b.pending, b.err
		b.pending, b.err = nil, net.ErrClosed
		b.mu.Unlock()
		if werr == nil && len(out) > 0 {
			_ = b.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = b.Conn.Write(out)
		}
		err = b.Conn.Close()
	})
	return err
}

// dialBatched connects to a tcp:// or mqtt:// broker URL through a batchedConn.
func dialBatched(ctx context.Context, u *url.URL) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	// paho writes a packet in several Writes and keeps them together by
	// locking the connection when it is a sync.Locker.
	return packets.NewThreadSafeConn(newBatchedConn(c)), nil
}
