package mqttconn

import (
	"context"
	"sync"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Up is a connection that came up.
type Up struct {
	// CM is the connection manager whose connection came up.
	CM *autopaho.ConnectionManager
	// SessionPresent is the CONNACK's Session Present flag: the broker
	// kept the session, and with it the subscriptions.
	SessionPresent bool
}

// ConnUp hands connections that come up from autopaho's OnConnectionUp,
// which paho documents must not block, to a goroutine the component owns,
// which may: it subscribes there, bounded by the component's context, and
// stops with it. The zero value is not usable; use NewConnUp.
//
// One connection waits at most: if another comes up before the first was
// taken, the newer replaces it (the older has gone by then), and it counts
// as a resumed session only if both were, so subscriptions a lost
// connection never made are made on the next.
type ConnUp struct {
	mu      sync.Mutex
	pending Up
	has     bool
	ready   chan struct{} // capacity 1: pending holds a connection
}

// NewConnUp returns an empty ConnUp.
func NewConnUp() *ConnUp { return &ConnUp{ready: make(chan struct{}, 1)} }

// OnConnectionUp records that cm's connection came up. It never blocks:
// call it from autopaho.ClientConfig.OnConnectionUp, or use it as that
// callback.
func (c *ConnUp) OnConnectionUp(cm *autopaho.ConnectionManager, ack *paho.Connack) {
	up := Up{CM: cm, SessionPresent: ack != nil && ack.SessionPresent}
	c.mu.Lock()
	if c.has {
		up.SessionPresent = up.SessionPresent && c.pending.SessionPresent
	}
	c.pending, c.has = up, true
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled when a connection waits to be taken: receive from it
// in the owner's select, then call Take.
func (c *ConnUp) Ready() <-chan struct{} { return c.ready }

// Take returns the connection that came up last and was not taken yet.
func (c *ConnUp) Take() (Up, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	up, ok := c.pending, c.has
	c.pending, c.has = Up{}, false
	return up, ok
}

// Run calls fn for every connection that comes up, one at a time on the
// caller's goroutine, until ctx ends. fn gets ctx: what it waits for
// (a SUBACK) it should bound with it.
func (c *ConnUp) Run(ctx context.Context, fn func(context.Context, Up)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ready:
			if up, ok := c.Take(); ok {
				fn(ctx, up)
			}
		}
	}
}
