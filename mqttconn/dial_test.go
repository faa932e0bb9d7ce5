package mqttconn

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

func TestDialer(t *testing.T) {
	for _, tc := range []struct {
		url    string
		dialed bool
	}{
		{"tcp://127.0.0.1:1883", true},
		{"mqtt://localhost:1883", true},
		{"tcp://127.0.0.1", false}, // no port: autopaho fills in its default
		{"ssl://127.0.0.1:8883", false},
		{"ws://127.0.0.1:8080/mqtt", false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Dialer(u, DialConfig{}) != nil; got != tc.dialed {
			t.Errorf("Dialer(%s) != nil is %v, want %v", tc.url, got, tc.dialed)
		}
	}
}

// TestDialWraps: every connection Dial returns is a sync.Locker (paho
// keeps a packet's writes together with it) and carries bytes both ways.
func TestDialWraps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // echo
				defer c.Close()
				b := make([]byte, 4)
				for {
					n, err := c.Read(b)
					if err != nil {
						return
					}
					if _, err := c.Write(b[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	for _, cfg := range []DialConfig{{}, {ReadBuffer: 4096}, {QueueWrites: true}, {QueueWrites: true, ReadBuffer: 4096}} {
		c, err := Dial(context.Background(), ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		if _, ok := c.(sync.Locker); !ok {
			t.Errorf("%+v: %T is not a sync.Locker", cfg, c)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("%+v: write: %v", cfg, err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
			t.Fatalf("%+v: read %q, %v", cfg, b, err)
		}
		c.Close()
	}
}
