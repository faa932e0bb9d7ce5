package simulator

import (
	"context"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

const (
	// DeviceHold is how many readings a device keeps while the broker
	// refuses them with PUBACK 0x97 (quota exceeded: its subscribers'
	// backlog is full), to send again in order, as firmware keeps readings
	// in flash it could not deliver. 1,024 readings are 34 minutes of
	// telemetry at one every two seconds; past that the device drops its
	// newest reading and counts it (Stats.HeldDropped).
	DeviceHold = 1024
	// holdMinBackoff and holdMaxBackoff bound the wait before a refused
	// reading is sent again, doubling while the broker keeps refusing.
	holdMinBackoff = 100 * time.Millisecond
	holdMaxBackoff = 5 * time.Second
	// reasonQuotaExceeded is the PUBACK reason code of a refused publish
	// (MQTT v5 §3.4.2.1, 0x97 Quota exceeded).
	reasonQuotaExceeded = 0x97
)

// held is one publishing goroutine's queue of readings the broker
// refused, oldest first, and the readings queued behind them: while it
// holds any, every later message of the goroutine's devices waits behind
// them, so each device's messages keep their order.
type held struct {
	queue    []outbound
	perSlot  map[*slot]int
	backoff  time.Duration
	retry    *time.Timer
	retrying bool // retry is armed
}

func newHeld() *held {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &held{perSlot: map[*slot]int{}, retry: t}
}

// add queues o behind what is held, unless its device holds DeviceHold
// readings already: then o is dropped and add reports false.
func (h *held) add(o outbound) bool {
	if h.perSlot[o.s] >= DeviceHold {
		return false
	}
	h.queue = append(h.queue, o)
	h.perSlot[o.s]++
	return true
}

// pop removes the oldest held message.
func (h *held) pop() {
	o := h.queue[0]
	h.queue[0] = outbound{}
	h.queue = h.queue[1:]
	if h.perSlot[o.s]--; h.perSlot[o.s] == 0 {
		delete(h.perSlot, o.s)
	}
	if len(h.queue) == 0 {
		h.queue = nil
	}
}

// wait arms the retry timer, doubling the backoff from the last.
func (h *held) wait() {
	h.backoff = min(max(2*h.backoff, holdMinBackoff), holdMaxBackoff)
	h.retry.Reset(h.backoff)
	h.retrying = true
}

// work publishes the messages of its queue, in order, until ctx ends. A
// message the broker refuses with 0x97 is held, with everything after it,
// and sent again after a backoff (see DeviceHold).
func (c *conn) work(ctx context.Context, cm *autopaho.ConnectionManager, q <-chan outbound) {
	h := newHeld()
	defer h.retry.Stop()
	for {
		var retry <-chan time.Time
		if h.retrying {
			retry = h.retry.C
		}
		select {
		case <-ctx.Done():
			return
		case o := <-q:
			if len(h.queue) > 0 {
				c.hold(h, o)
				continue
			}
			if c.publish(ctx, cm, o) {
				c.hold(h, o)
				h.wait()
			}
		case <-retry:
			h.retrying = false
			for len(h.queue) > 0 && ctx.Err() == nil {
				if c.publish(ctx, cm, h.queue[0]) {
					h.wait()
					break
				}
				h.pop()
				h.backoff = 0
			}
		}
	}
}

// hold keeps o in h, or counts it dropped when its device's hold is full.
func (c *conn) hold(h *held, o outbound) {
	if !h.add(o) {
		c.f.heldDropped.Add(1)
		c.f.log.Debug("reading dropped: the device holds as many refused readings as it can", "device", o.s.profile.ID, "held", DeviceHold)
	}
}
