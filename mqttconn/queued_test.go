package mqttconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestQueuedConnKeepsOrder: writes from many goroutines arrive whole and,
// per goroutine, in order, and Close delivers what is still queued.
func TestQueuedConnKeepsOrder(t *testing.T) {
	c, s := pair(t)
	q := NewQueuedConn(c, 0)
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				msg := []byte{byte(w), byte(i >> 8), byte(i)}
				if _, err := q.Write(msg); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	wg.Wait()
	if err := q.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	var b []byte
	select {
	case b = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the peer never saw the connection close")
	}
	if len(b) != writers*each*3 {
		t.Fatalf("read %d bytes, want %d", len(b), writers*each*3)
	}
	next := make([]int, writers)
	for off := 0; off < len(b); off += 3 {
		w, i := int(b[off]), int(b[off+1])<<8|int(b[off+2])
		if w >= writers || i != next[w] {
			t.Fatalf("at byte %d: writer %d message %d, want message %d", off, w, i, next[w])
		}
		next[w]++
	}
}

// TestQueuedConnWriteAfterFailure: once the socket write fails, the
// connection is closed and later writes return the error.
func TestQueuedConnWriteAfterFailure(t *testing.T) {
	c, s := pair(t)
	q := NewQueuedConn(c, 0)
	defer q.Close()
	s.Close()
	// The peer's RST makes a later socket write fail; until the writer has
	// seen it, writes still queue.
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = q.Write(bytes.Repeat([]byte{1}, 1024))
		if err == nil {
			time.Sleep(time.Millisecond) // polling a condition with a deadline
		}
	}
	if err == nil {
		t.Fatal("writes still succeed after the peer closed")
	}
	// The writer closed the connection, so reads end too.
	if _, rerr := q.Read(make([]byte, 1)); rerr == nil {
		t.Fatal("read succeeded on a failed connection")
	}
}

// TestQueuedConnClosed: Write after Close fails with net.ErrClosed, and
// Close is idempotent.
func TestQueuedConnClosed(t *testing.T) {
	c, _ := pair(t)
	q := NewQueuedConn(c, 4096)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
	_ = q.Close()
}

// TestQueuedConnReadsThroughBuffer: reads return what the peer wrote.
func TestQueuedConnReadsThroughBuffer(t *testing.T) {
	c, s := pair(t)
	q := NewQueuedConn(c, 16)
	defer q.Close()
	want := bytes.Repeat([]byte("abc"), 100)
	go func() { _, _ = s.Write(want) }()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(q, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read other bytes than were written")
	}
}
