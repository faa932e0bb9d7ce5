package store_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker/hooks/store"
)

// TestHistogramQuantile holds the snapshot's Quantile to the shared
// estimator: cumulative Counts over Bounds, Count past the last bound.
func TestHistogramQuantile(t *testing.T) {
	h := store.Histogram{Bounds: []float64{0.001, 0.01, 0.1}, Counts: []uint64{10, 30, 40}, Count: 50}
	for _, tc := range []struct {
		q, want float64
	}{
		{0.1, 0.0005}, // inside the first bucket, from 0
		{0.4, 0.0055}, // inside the second
		{0.8, 0.1},    // the third bucket's bound
		{0.99, 0.1},   // past the last bound: the last bound
		{0.6, 0.01},   // on the second bucket's bound
	} {
		require.InDelta(t, tc.want, h.Quantile(tc.q), 1e-12, "q %v", tc.q)
	}
	require.True(t, math.IsNaN(store.Histogram{Bounds: []float64{1}, Counts: []uint64{0}}.Quantile(0.5)))
}
