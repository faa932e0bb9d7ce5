package mqttconn

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// closeFlushTimeout bounds how long Close spends writing what is still
// queued before it closes the connection.
const closeFlushTimeout = time.Second

// QueuedConn is a net.Conn whose reads go through a buffer and whose writes
// are queued and written by one goroutine, so what several writers queue
// together leaves in one system call, and a writer never blocks on the
// socket. MQTT clients read each packet's fixed header and body in
// separate small reads and write each PUBACK on its own: at high rates
// those system calls bound the client (the ingestor's acks, the
// benchmark's thousands of device connections). A reader goroutine that
// must never block on a write (a broker blocked writing to us while we
// block writing to it would deadlock the connection) may write from its
// own goroutine.
//
// Order is kept. A failed write closes the connection, so the reader sees
// it, and every later Write returns the error. Close writes what is
// queued, with a short deadline, then closes. The writing goroutine is
// owned by the QueuedConn: it runs from NewQueuedConn until Close or a
// failed write.
type QueuedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	pending []byte
	err     error
	kick    chan struct{} // capacity 1: something is queued
	closing chan struct{}
	flushed chan struct{} // closed when the writer has exited
	once    sync.Once
}

// NewQueuedConn wraps c, reading through a buffer of readBuffer bytes
// (none when readBuffer <= 0), and starts its writer.
func NewQueuedConn(c net.Conn, readBuffer int) *QueuedConn {
	q := &QueuedConn{Conn: c, kick: make(chan struct{}, 1), closing: make(chan struct{}), flushed: make(chan struct{})}
	if readBuffer > 0 {
		q.r = bufio.NewReaderSize(c, readBuffer)
	}
	go q.writer()
	return q
}

// Read reads from the buffer, refilling it from the connection when empty.
func (q *QueuedConn) Read(p []byte) (int, error) {
	if q.r == nil {
		return q.Conn.Read(p)
	}
	return q.r.Read(p)
}

// Write queues p for the writer and returns at once; it fails only once
// an earlier write has failed or the connection is closed.
func (q *QueuedConn) Write(p []byte) (int, error) {
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return 0, err
	}
	q.pending = append(q.pending, p...)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// writer writes what is queued whenever there is something, until Close.
func (q *QueuedConn) writer() {
	defer close(q.flushed)
	var spare []byte
	for {
		select {
		case <-q.kick:
		case <-q.closing:
			return
		}
		q.mu.Lock()
		out := q.pending
		if len(out) == 0 {
			q.mu.Unlock()
			continue
		}
		q.pending = spare[:0] // spare is the buffer written last time, not out
		q.mu.Unlock()
		if _, err := q.Conn.Write(out); err != nil {
			q.mu.Lock()
			q.err = err
			q.mu.Unlock()
			q.Conn.Close() // the reader sees it
			return
		}
		spare = out
	}
}

// Close writes what is still queued, with a short deadline, closes the
// connection, and waits for the writer to exit.
func (q *QueuedConn) Close() error {
	var err error
	q.once.Do(func() {
		close(q.closing)
		<-q.flushed
		q.mu.Lock()
		out, werr := q.pending, q.err
		q.pending, q.err = nil, net.ErrClosed
		q.mu.Unlock()
		if werr == nil && len(out) > 0 {
			_ = q.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			_, _ = q.Conn.Write(out)
		}
		err = q.Conn.Close()
	})
	return err
}
