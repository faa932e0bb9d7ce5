package mqttconn

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

func TestConnUp(t *testing.T) {
	a, b := new(autopaho.ConnectionManager), new(autopaho.ConnectionManager)
	resumed, fresh := &paho.Connack{SessionPresent: true}, &paho.Connack{}
	for _, tc := range []struct {
		name    string
		ups     []Up // in the order they came up
		want    Up
		wantAny bool
	}{
		{"none", nil, Up{}, false},
		{"one fresh", []Up{{CM: a}}, Up{CM: a}, true},
		{"one resumed", []Up{{CM: a, SessionPresent: true}}, Up{CM: a, SessionPresent: true}, true},
		{"newer replaces older", []Up{{CM: a, SessionPresent: true}, {CM: b, SessionPresent: true}}, Up{CM: b, SessionPresent: true}, true},
		{"resumed after a fresh one not taken still subscribes", []Up{{CM: a}, {CM: b, SessionPresent: true}}, Up{CM: b}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConnUp()
			for _, up := range tc.ups {
				ack := fresh
				if up.SessionPresent {
					ack = resumed
				}
				c.OnConnectionUp(up.CM, ack) // never blocks, however many
			}
			got, ok := c.Take()
			if ok != tc.wantAny || got != tc.want {
				t.Fatalf("Take() = %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantAny)
			}
			if _, ok := c.Take(); ok {
				t.Fatal("a connection was taken twice")
			}
		})
	}
}

// TestConnUpRun: Run calls fn for a connection that comes up while it
// runs, and returns when its context ends.
func TestConnUpRun(t *testing.T) {
	c := NewConnUp()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Up, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(_ context.Context, up Up) { got <- up })
	}()
	cm := new(autopaho.ConnectionManager)
	c.OnConnectionUp(cm, nil)
	select {
	case up := <-got:
		if up.CM != cm || up.SessionPresent {
			t.Fatalf("got %+v", up)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fn not called")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}
