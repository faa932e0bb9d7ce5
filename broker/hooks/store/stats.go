package store

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-iot/sentinel/quantile"
)

// Stats is a snapshot of the store's group commits, for the broker's
// /metrics: its histograms have Prometheus's shape (cumulative buckets by
// upper bound in seconds), so an exporter can hand them to
// prometheus.MustNewConstHistogram(desc, h.Count, h.Sum, h.Buckets()).
type Stats struct {
	// Syncs counts group commits: one fsync each.
	Syncs uint64
	// SyncErrors counts group commits whose fsync failed.
	SyncErrors uint64
	// Released counts callbacks released by group commits: publish
	// acknowledgements and SUBACKs that waited for durability.
	Released uint64
	// SyncSeconds is how long each fsync took: the store's write latency.
	SyncSeconds Histogram
	// AckDelaySeconds is how long each acknowledgement waited, from the
	// publish being handed to the store to its release: the latency
	// durability adds for a publisher.
	AckDelaySeconds Histogram
	// BatchSize is how many acknowledgements each fsync released.
	BatchSize Histogram
}

// Histogram is a fixed-bucket histogram snapshot.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending; +Inf is implied.
	Bounds []float64
	// Counts[i] counts observations <= Bounds[i] (cumulative).
	Counts []uint64
	// Count is the number of observations, Sum their total.
	Count uint64
	Sum   float64
}

// Buckets returns the cumulative counts keyed by upper bound, the form
// prometheus.MustNewConstHistogram takes.
func (h Histogram) Buckets() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		m[b] = h.Counts[i]
	}
	return m
}

// Quantile estimates the q-quantile (0..1) as Prometheus's
// histogram_quantile does (see quantile.Histogram): linearly inside the
// bucket it falls in; the last bound when it is past it, NaN when empty.
func (h Histogram) Quantile(q float64) float64 {
	bs := make([]quantile.Bucket, 0, len(h.Bounds)+1)
	for i, b := range h.Bounds {
		bs = append(bs, quantile.Bucket{UpperBound: b, Count: float64(h.Counts[i])})
	}
	bs = append(bs, quantile.Bucket{UpperBound: math.Inf(1), Count: float64(h.Count)})
	return quantile.Histogram(bs, q)
}

// Seconds buckets, 50 µs to 5 s.
var secondBounds = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

var batchBounds = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384}

// histogram is the live, concurrent side of Histogram.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; last is +Inf
	count  atomic.Uint64
	mu     sync.Mutex // guards sum
	sum    float64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) add(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.count.Add(1)
	h.mu.Lock()
	h.sum += v
	h.mu.Unlock()
}

func (h *histogram) observe(d time.Duration) { h.add(d.Seconds()) }

func (h *histogram) snapshot() Histogram {
	s := Histogram{Bounds: append([]float64(nil), h.bounds...), Counts: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range h.bounds {
		cum += h.counts[i].Load()
		s.Counts[i] = cum
	}
	s.Count = cum + h.counts[len(h.bounds)].Load()
	h.mu.Lock()
	s.Sum = h.sum
	h.mu.Unlock()
	return s
}

type stats struct {
	syncs, syncErrors, released atomic.Uint64
	sync, ackDelay, batch       *histogram
}

func newStats() *stats {
	return &stats{
		sync:     newHistogram(secondBounds),
		ackDelay: newHistogram(secondBounds),
		batch:    newHistogram(batchBounds),
	}
}

func (s *stats) syncDone(d time.Duration, n int, err error) {
	s.syncs.Add(1)
	if err != nil {
		s.syncErrors.Add(1)
		return
	}
	s.released.Add(uint64(n))
	s.sync.observe(d)
	s.batch.add(float64(n))
}

func (s *stats) snapshot() Stats {
	return Stats{
		Syncs:           s.syncs.Load(),
		SyncErrors:      s.syncErrors.Load(),
		Released:        s.released.Load(),
		SyncSeconds:     s.sync.snapshot(),
		AckDelaySeconds: s.ackDelay.snapshot(),
		BatchSize:       s.batch.snapshot(),
	}
}
