package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCommitterRetriesFailedSync: a failed sync acknowledges nothing, and
// its batch is acknowledged, in order, by the next sync that works.
func TestCommitterRetriesFailedSync(t *testing.T) {
	var fails atomic.Int32
	fails.Store(2)
	c := newCommitter(func() error {
		if fails.Add(-1) >= 0 {
			return errors.New("disk full")
		}
		return nil
	}, newStats())
	defer c.stop()
	var mu sync.Mutex
	var acked []int
	done := make(chan struct{})
	for i := range 3 {
		c.add(func() {
			mu.Lock()
			acked = append(acked, i)
			n := len(acked)
			mu.Unlock()
			if n == 3 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch was never acknowledged after the store recovered")
	}
	require.Equal(t, []int{0, 1, 2}, acked)
	require.LessOrEqual(t, fails.Load(), int32(-1), "acknowledged only after a sync that worked")
}

// TestCommitterStopWithBrokenStore: when even the last sync fails, no ack
// is sent, and a caller of wait is let go rather than left hanging.
func TestCommitterStopWithBrokenStore(t *testing.T) {
	c := newCommitter(func() error { return errors.New("disk gone") }, newStats())
	var acked atomic.Bool
	c.add(func() { acked.Store(true) })
	waited := make(chan struct{})
	go func() {
		c.wait()
		close(waited)
	}()
	// Both wait in the queue between failed rounds; stop then runs the
	// last round, which fails too.
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 2
	}, 10*time.Second, time.Millisecond)
	c.stop()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("wait hung after stop with a broken store")
	}
	require.False(t, acked.Load(), "no ack for a publish that was never made durable")
}
