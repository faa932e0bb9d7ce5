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

// urgentWindow is how many commands may await their PUBACK at once. One at
// a time made the last command of a burst (a wave failing together, a
// tripped cohort's rollbacks) wait for every PUBACK ahead of it: tens of
// round trips. Commands are for different devices (the tracker sends a
// device its next command only after the last one's result), so their
// order across devices does not matter. Order within a topic does (a
// retained halt advisory and the one that clears it; two commands to one
// device), so a message waits while another on its topic is in flight.
const urgentWindow = 64

// outbox queues the recoverer's outgoing messages and publishes them from
// its own goroutines. The tracker pushes without ever waiting on the
// network. That matters: paho hands incoming messages to one goroutine,
// and a tracker blocked on a PUBACK while paho waits for the tracker to take
// the next message would stall both. The queue is unbounded, but it grows
// only while messages arrive, which needs a connection, so it stays small.
//
// Commands and advisories go in a priority lane ahead of audit records: a
// device waits for its command, a person reads the audit trail later, and
// a burst of decisions must not delay the next command. The priority lane
// keeps up to urgentWindow publishes in flight, one per topic; the audit
// lane publishes one at a time, in order, and only while no command waits.
// A decision's command still leaves before the decision itself.
type outbox struct {
	mu       sync.Mutex
	urgent   []queued        // commands and advisories
	q        []queued        // audit records
	inFlight int             // urgent messages taken and not yet delivered or dropped
	busy     map[string]bool // topics with an urgent message in flight
	lost     int             // urgent messages taken but cut off by the drain deadline
	wakeU    chan struct{}
	wakeQ    chan struct{}
}

// queued is one outgoing message; received, for a command, is when the
// status that caused it arrived, so the decision latency is measured from
// there to the broker's PUBACK.
type queued struct {
	p        *paho.Publish
	received time.Time
}

func newOutbox() *outbox {
	return &outbox{wakeU: make(chan struct{}, 1), wakeQ: make(chan struct{}, 1), busy: make(map[string]bool)}
}

// push queues an audit record.
func (o *outbox) push(p *paho.Publish, received time.Time) {
	o.mu.Lock()
	o.q = append(o.q, queued{p: p, received: received})
	o.mu.Unlock()
	signal(o.wakeQ)
}

// pushUrgent queues a command or advisory ahead of every audit record.
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

// takeUrgent removes the head of the priority lane and counts it in
// flight, unless a message on its topic is in flight still: then the lane
// waits for urgentDone.
func (o *outbox) takeUrgent() (queued, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.urgent) == 0 || o.busy[o.urgent[0].p.Topic] {
		return queued{}, false
	}
	m := o.urgent[0]
	o.urgent[0] = queued{}
	o.urgent = o.urgent[1:]
	o.inFlight++
	o.busy[m.p.Topic] = true
	return m, true
}

// urgentDone ends an urgent message's flight: the next message on its
// topic may go, and the audit lane may once none is left.
func (o *outbox) urgentDone(topic string) {
	o.mu.Lock()
	o.inFlight--
	delete(o.busy, topic)
	idle := o.inFlight == 0 && len(o.urgent) == 0
	o.mu.Unlock()
	signal(o.wakeU)
	if idle {
		signal(o.wakeQ)
	}
}

// peekAudit returns the head of the audit lane, unless a command waits or
// is in flight.
func (o *outbox) peekAudit() queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.urgent) > 0 || o.inFlight > 0 || len(o.q) == 0 {
		return queued{}
	}
	return o.q[0]
}

func (o *outbox) popAudit() {
	o.mu.Lock()
	o.q[0] = queued{}
	o.q = o.q[1:]
	o.mu.Unlock()
}

// len counts the messages not yet delivered, in flight included.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.urgent) + len(o.q) + o.inFlight + o.lost
}

// run publishes until ctx has ended and the outbox is empty, or until drain
// has passed since ctx ended: then what is left is reported by len.
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

	d := delivery{cm: cm, st: st, log: log}
	var lanes sync.WaitGroup
	lanes.Go(func() { o.urgentLane(ctx, pubCtx, d) })
	lanes.Go(func() { o.auditLane(ctx, pubCtx, d) })
	lanes.Wait()
}

// wait blocks until wake fires or, once ctx has ended, polls briefly so a
// lane notices the other lane draining. It reports false when the lane is
// done: ctx ended and nothing is left, or pubCtx ended.
func (o *outbox) wait(ctx, pubCtx context.Context, wake <-chan struct{}) bool {
	if ctx.Err() != nil && o.len() == 0 {
		return false
	}
	select {
	case <-wake:
	case <-pubCtx.Done():
		return false
	case <-ctx.Done():
		if o.len() > 0 {
			select {
			case <-wake:
			case <-time.After(10 * time.Millisecond):
			case <-pubCtx.Done():
				return false
			}
		}
	}
	return true
}

// urgentLane publishes commands and advisories, up to urgentWindow at once.
func (o *outbox) urgentLane(ctx, pubCtx context.Context, d delivery) {
	sem := make(chan struct{}, urgentWindow)
	var flights sync.WaitGroup
	defer flights.Wait()
	for pubCtx.Err() == nil {
		m, ok := o.takeUrgent()
		if !ok {
			if !o.wait(ctx, pubCtx, o.wakeU) {
				return
			}
			continue
		}
		if !m.received.IsZero() {
			d.st.sendLatency(time.Since(m.received))
		}
		select {
		case sem <- struct{}{}:
		case <-pubCtx.Done():
			o.mu.Lock()
			o.lost++
			o.mu.Unlock()
			o.urgentDone(m.p.Topic)
			return
		}
		flights.Go(func() {
			defer func() { <-sem }()
			defer o.urgentDone(m.p.Topic)
			switch {
			case d.deliver(pubCtx, m):
				if !m.received.IsZero() {
					d.st.latency(time.Since(m.received))
				}
			case pubCtx.Err() != nil:
				o.mu.Lock()
				o.lost++
				o.mu.Unlock()
			}
		})
	}
}

// auditLane publishes audit records one at a time, in order, while no
// command waits.
func (o *outbox) auditLane(ctx, pubCtx context.Context, d delivery) {
	for pubCtx.Err() == nil {
		m := o.peekAudit()
		if m.p == nil {
			if !o.wait(ctx, pubCtx, o.wakeQ) {
				return
			}
			continue
		}
		if d.deliver(pubCtx, m) || pubCtx.Err() == nil {
			o.popAudit() // delivered, or refused for good
		}
	}
}

// delivery publishes one message until the broker takes it.
type delivery struct {
	cm  *autopaho.ConnectionManager
	st  *statsCounter
	log *slog.Logger
}

// deliver publishes m, waiting out connection losses and retrying failed
// attempts, until the broker acknowledges it (true), refuses it for good
// (false, counted and logged), or pubCtx ends (false).
func (d delivery) deliver(pubCtx context.Context, m queued) bool {
	for pubCtx.Err() == nil {
		attemptCtx, done := context.WithTimeout(pubCtx, publishTimeout)
		resp, err := d.cm.Publish(attemptCtx, m.p)
		done()
		switch {
		case err == nil:
			d.st.published.Add(1)
			return true
		case errors.Is(err, autopaho.ConnectionDownError):
			if err := d.cm.AwaitConnection(pubCtx); err != nil {
				return false
			}
		case resp != nil || errors.Is(err, paho.ErrInvalidArguments):
			// The broker answered with an error reason code (not
			// authorized, say) or the packet can never be sent: retrying
			// the same message will not help.
			d.st.publishFailures.Add(1)
			d.log.Error("broker refused a message; dropped", "topic", m.p.Topic, "err", err)
			return false
		default:
			d.log.Warn("publish failed; retrying", "topic", m.p.Topic, "err", err)
			select {
			case <-time.After(250 * time.Millisecond):
			case <-pubCtx.Done():
			}
		}
	}
	return false
}
