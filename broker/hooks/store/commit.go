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
}

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

// wait blocks until a sync that started after the call has completed.
func (c *committer) wait() {
	ch := make(chan struct{})
	c.add(func() { close(ch) })
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
			c.round()
		case <-c.quit:
			c.round() // whatever was queued before stop
			return
		}
	}
}

// round syncs once and releases everything queued before the sync began.
// A failed sync releases nothing: those publishes stay unacknowledged, and
// their clients resend them on their next connection (pebble itself treats
// a failed WAL write as fatal).
func (c *committer) round() {
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	start := now()
	err := c.syncFn()
	end := now()
	c.stats.syncDone(end.Sub(start), len(batch), err)
	if err == nil {
		for _, w := range batch {
			w.fn()
			c.stats.ackDelay.observe(end.Sub(w.since))
		}
	}
}
