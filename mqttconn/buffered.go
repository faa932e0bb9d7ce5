package mqttconn

import (
	"bufio"
	"net"
)

// bufferedConn reads through a buffer and writes straight through.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newReader(c net.Conn, size int) *bufio.Reader { return bufio.NewReaderSize(c, size) }

// Read reads from the buffer, refilling it from the connection when empty.
func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
