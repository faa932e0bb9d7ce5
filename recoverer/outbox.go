package recoverer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// publishTimeout bounds one QoS 1 publish, from sending to PUBACK.
const publishTimeout = 10 * time.Second

// outbox queues the recoverer's outgoing messages and publishes them, in
// order, from its own goroutine. The tracker pushes without ever waiting on
// the network. That matters: paho hands incoming messages to one goroutine,
// and a tracker blocked on a PUBACK while paho waits for the tracker to take
// the next message would stall both. The queue is unbounded, but it grows
// only while messages arrive, which needs a connection, so it stays small.
//
// Commands and advisories go in a priority lane ahead of audit records: a
// device waits for its command, a person reads the audit trail later, and
// a burst of decisions must not delay the next command. A decision's
// command still leaves before the decision itself.
type outbox struct {
	mu       sync.Mutex
	urgent   []queued // commands and advisories
	q        []queued // audit records
	inFlight bool     // an urgent message is being published
	wakeU    chan struct{}
	wakeQ    chan struct{}
}

// queued is one outgoing message; received, for a command, is when the
// status that caused it arrived, so the decision latency is measured from
// there to the broker's PUBACK.
type queued struct {
	p        *paho.Publish
	received time.Time
	sent     bool // its send latency is recorded (a retry after a reconnect is not counted again)
}

// markSent flags the head of a lane as sent.
func (o *outbox) markSent(urgent bool) {
	o.mu.Lock()
	if urgent {
		o.urgent[0].sent = true
	} else {
		o.q[0].sent = true
	}
	o.mu.Unlock()
}

func newOutbox() *outbox {
	return &outbox{wakeU: make(chan struct{}, 1), wakeQ: make(chan struct{}, 1)}
}

func (o *outbox) push(p *paho.Publish, received time.Time) {
	o.mu.Lock()
	o.q = append(o.q, queued{p: p, received: received})
	o.mu.Unlock()
	signal(o.wakeQ)
}

// pushUrgent queues p in the priority lane.
func (o *outbox) pushUrgent(p *paho.Publish, received time.Time) {
	o.mu.Lock()
	o.urgent = append(o.urgent, queued{p: p, received: received})
	o.mu.Unlock()
	signal(o.wakeU)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// peek returns the head of a lane. The audit lane holds back while an
// urgent message is queued or in flight, so a decision never overtakes
// its command; the urgent lane never waits for the audit lane.
func (o *outbox) peek(urgent bool) queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	if urgent {
		if len(o.urgent) == 0 {
			return queued{}
		}
		o.inFlight = true
		return o.urgent[0]
	}
	if len(o.urgent) > 0 || o.inFlight || len(o.q) == 0 {
		return queued{}
	}
	return o.q[0]
}

// pop removes the head of the lane peek named. Only run calls peek and
// pop, and pushes only append, so that head is still the one peek saw.
func (o *outbox) pop(urgent bool) {
	o.mu.Lock()
	if urgent {
		o.urgent[0] = queued{}
		o.urgent = o.urgent[1:]
		o.inFlight = false
		defer signal(o.wakeQ)
	} else {
		o.q[0] = queued{}
		o.q = o.q[1:]
	}
	o.mu.Unlock()
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.urgent) + len(o.q)
}

// run publishes until ctx ends and the queues are empty, or until drain has
// passed since ctx ended, with one publisher per lane so a command never
// waits for an audit record's PUBACK. A message the broker refuses is
// dropped and counted; a connection loss waits for the next connection.
func (o *outbox) run(ctx context.Context, cm *autopaho.ConnectionManager, drain time.Duration, st *statsCounter, log *slog.Logger) {
	pubCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var deadline sync.WaitGroup
	deadline.Go(func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(drain)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-pubCtx.Done():
			}
		case <-pubCtx.Done():
		}
	})
	defer deadline.Wait()
	defer cancel()

	var lanes sync.WaitGroup
	lanes.Go(func() { o.lane(ctx, pubCtx, cm, true, st, log) })
	lanes.Go(func() { o.lane(ctx, pubCtx, cm, false, st, log) })
	lanes.Wait()
}

// lane publishes one lane's messages, in order, until ctx has ended and
// the outbox is empty, or pubCtx ends.
func (o *outbox) lane(ctx, pubCtx context.Context, cm *autopaho.ConnectionManager, urgent bool, st *statsCounter, log *slog.Logger) {
	wake := o.wakeQ
	if urgent {
		wake = o.wakeU
	}
	for pubCtx.Err() == nil {
		m := o.peek(urgent)
		p, received := m.p, m.received
		if p == nil {
			if ctx.Err() != nil && o.len() == 0 {
				return // drained
			}
			select {
			case <-wake:
			case <-ctx.Done():
				if o.len() > 0 {
					// Draining: poll until the other lane is through.
					select {
					case <-wake:
					case <-time.After(10 * time.Millisecond):
					case <-pubCtx.Done():
					}
				}
			}
			continue
		}
		if !received.IsZero() && !m.sent {
			st.sendLatency(time.Since(received))
			o.markSent(urgent)
		}
		attemptCtx, done := context.WithTimeout(pubCtx, publishTimeout)
		resp, err := cm.Publish(attemptCtx, p)
		done()
		switch {
		case err == nil:
			o.pop(urgent)
			st.published.Add(1)
			if !received.IsZero() {
				st.latency(time.Since(received))
			}
		case errors.Is(err, autopaho.ConnectionDownError):
			if err := cm.AwaitConnection(pubCtx); err != nil {
				return
			}
		case resp != nil || errors.Is(err, paho.ErrInvalidArguments):
			// The broker answered with an error reason code (not
			// authorized, say) or the packet can never be sent: retrying
			// the same message will not help.
			o.pop(urgent)
			st.publishFailures.Add(1)
			log.Error("broker refused a message; dropped", "topic", p.Topic, "err", err)
		default:
			log.Warn("publish failed; retrying", "topic", p.Topic, "err", err)
			select {
			case <-time.After(250 * time.Millisecond):
			case <-pubCtx.Done():
			}
		}
	}
}
