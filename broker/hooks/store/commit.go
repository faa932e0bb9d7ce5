package store

import (
	"sync"
	"time"
)

// committer is the group commit: publishes waiting for durability queue a
// callback; one goroutine syncs the store once for everything queued, then
// runs the callbacks in the order they were queued. Publishes arriving
// during a sync wait for the next one, so under load each fsync covers many
// publishes and throughput follows the number of writers, not the fsync
// latency.
//
// The goroutine is owned by the committer: newCommitter starts it, stop ends
// it after a last sync, and returns once it has exited.
type committer struct {
	syncFn func() error
	stats  *stats

	mu      sync.Mutex
	queue   []waiter // callbacks waiting for the next sync, in arrival order
	stopped bool

	wake chan struct{} // buffered 1: there is work
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine has exited
}

type waiter struct {
	fn    func()
	since time.Time
	// unblock, when set, runs instead of fn if the last sync at stop
	// fails: a caller of wait must not hang, while an ack must not be sent.
	unblock func()
}

// retryDelay is the pause before a failed sync is tried again.
const retryDelay = 100 * time.Millisecond

func newCommitter(syncFn func() error, st *stats) *committer {
	c := &committer{
		syncFn: syncFn,
		stats:  st,
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go c.run()
	return c
}

// add queues fn to run after the next sync. After stop it runs fn at once:
// stop has synced everything written before it.
func (c *committer) add(fn func()) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		fn()
		return
	}
	c.queue = append(c.queue, waiter{fn: fn, since: now()})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wait blocks until a sync that started after the call has completed (or,
// if the store fails for good, until it stops).
func (c *committer) wait() {
	ch := make(chan struct{})
	release := func() { close(ch) }
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, waiter{fn: release, since: now(), unblock: release})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-ch
}

// stop runs a last sync for whatever is queued, ends the goroutine and
// waits for it. It is safe to call more than once.
func (c *committer) stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.stopped = true
	c.mu.Unlock()
	close(c.quit)
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
			if c.round() == nil {
				continue
			}
			// The batch is queued again, unacknowledged; try again shortly.
			select {
			case <-time.After(retryDelay):
				select {
				case c.wake <- struct{}{}:
				default:
				}
			case <-c.quit:
				c.last()
				return
			}
		case <-c.quit:
			c.last()
			return
		}
	}
}

// last syncs whatever was queued before stop. If that fails too, the acks
// are never sent (their clients resend the publishes) and callers of wait
// are let go.
func (c *committer) last() {
	if c.round() == nil {
		return
	}
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, w := range batch {
		if w.unblock != nil {
			w.unblock()
		}
	}
}

// round syncs once and releases everything queued before the sync began.
// A failed sync releases nothing: the batch goes back to the head of the
// queue, unacknowledged, for the next round, and round returns the error
// (pebble itself treats a failed WAL write as fatal, so this is rare).
func (c *committer) round() error {
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	start := now()
	err := c.syncFn()
	end := now()
	c.stats.syncDone(end.Sub(start), len(batch), err)
	if err != nil {
		c.mu.Lock()
		c.queue = append(batch, c.queue...)
		c.mu.Unlock()
		return err
	}
	for _, w := range batch {
		w.fn()
		c.stats.ackDelay.observe(end.Sub(w.since))
	}
	return nil
}
