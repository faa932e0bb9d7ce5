// Package quantile estimates quantiles, of a sample and of a cumulative
// histogram: the one home of Sentinel's percentiles (the recoverer's
// decision latency, the benchmarks' commit lag and ack latency, the broker
// store's fsync histograms). It is a leaf module, importing only the
// standard library, so every module may use it. Pure functions, no state.
package quantile

import (
	"cmp"
	"math"
	"slices"
)

// Nearest returns the q-quantile (q in 0..1) of xs by the nearest-rank
// method: the smallest value with at least a share q of the sample at or
// below it (Hyndman and Fan, "Sample Quantiles in Statistical Packages",
// 1996, definition 1), so the result is always one of the observations and
// q = 1 is the maximum. xs need not be sorted and is not modified; an
// empty sample gives the zero value.
func Nearest[T cmp.Ordered](xs []T, q float64) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return Sorted(s, q)
}

// Sorted is Nearest for a sample already sorted ascending, without a
// copy: for taking several quantiles of one sample.
func Sorted[T cmp.Ordered](xs []T, q float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	return xs[rank(len(xs), q)]
}

// rank is the 0-based index of the q-quantile of n sorted values.
func rank(n int, q float64) int {
	// q*n computed in floating point lands a hair above a whole number
	// (0.07*100 is 7.000000000000001), which ceil would push to the next
	// rank; rounding to 1e-9 first keeps exact ranks exact.
	r := int(math.Ceil(math.Round(q*float64(n)*1e9) / 1e9))
	return max(0, min(r-1, n-1))
}

// Bucket is one bucket of a cumulative histogram: Count observations at or
// below UpperBound (Prometheus's `le`, +Inf for the last).
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Histogram estimates the q-quantile of a cumulative histogram whose
// buckets are sorted by UpperBound, as Prometheus's histogram_quantile
// does: linearly inside the bucket the quantile falls in, the first
// bucket starting at 0; a quantile in the +Inf bucket is the last finite
// bound. It returns NaN for an empty histogram.
func Histogram(bs []Bucket, q float64) float64 {
	if len(bs) == 0 || bs[len(bs)-1].Count <= 0 {
		return math.NaN()
	}
	target := q * bs[len(bs)-1].Count
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.Count >= target {
			switch {
			case math.IsInf(b.UpperBound, 1):
				return lower
			case b.Count == below:
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(target-below)/(b.Count-below)
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower
}

// Delta is the histogram of the observations between two scrapes of the
// same cumulative histogram: after's counts minus before's, bucket by
// bucket (a bucket missing from before counts from 0). It is sorted by
// UpperBound, ready for Histogram.
func Delta(before, after []Bucket) []Bucket {
	prev := make(map[float64]float64, len(before))
	for _, b := range before {
		prev[b.UpperBound] = b.Count
	}
	out := make([]Bucket, len(after))
	for i, b := range after {
		out[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - prev[b.UpperBound]}
	}
	slices.SortFunc(out, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	return out
}
