package quantile_test

import (
	"math"
	"testing"
	"time"

	"github.com/sentinel-iot/sentinel/quantile"
)

func TestNearest(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	for _, tc := range []struct {
		name string
		xs   []int
		q    float64
		want int
	}{
		{"empty", nil, 0.5, 0},
		{"one", []int{7}, 0.5, 7},
		{"one, q 0", []int{7}, 0, 7},
		{"median of three", []int{3, 1, 2}, 0.5, 2},
		{"median of four is the second", []int{4, 1, 3, 2}, 0.5, 2},
		{"q 0 is the minimum", []int{5, 9, 1}, 0, 1},
		{"q 1 is the maximum", []int{5, 9, 1}, 1, 9},
		{"p50 of 1..100", hundred, 0.5, 50},
		{"p99 of 1..100", hundred, 0.99, 99},
		{"p07 of 1..100, exact despite 0.07*100 > 7", hundred, 0.07, 7},
		{"p99.5 of 1..100 rounds up", hundred, 0.995, 100},
		{"p14 of ten", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.14, 2},
		{"q above 1 is the maximum", []int{1, 2}, 1.5, 2},
		{"negative q is the minimum", []int{1, 2}, -1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]int(nil), tc.xs...)
			if got := quantile.Nearest(tc.xs, tc.q); got != tc.want {
				t.Fatalf("Nearest(%v, %v) = %d, want %d", tc.xs, tc.q, got, tc.want)
			}
			for i := range before {
				if before[i] != tc.xs[i] {
					t.Fatalf("Nearest modified its input: %v, was %v", tc.xs, before)
				}
			}
		})
	}
	ds := []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}
	if got := quantile.Nearest(ds, 1); got != 3*time.Millisecond {
		t.Fatalf("Nearest of durations, q 1 = %s, want 3ms", got)
	}
}

func TestHistogram(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		bs   []quantile.Bucket
		q    float64
		want float64
	}{
		{"empty", nil, 0.5, math.NaN()},
		{"no observations", []quantile.Bucket{{1, 0}, {inf, 0}}, 0.5, math.NaN()},
		{"inside the first bucket, from 0", []quantile.Bucket{{1, 10}, {2, 10}, {inf, 10}}, 0.5, 0.5},
		{"inside the second bucket", []quantile.Bucket{{1, 10}, {2, 30}, {inf, 30}}, 0.5, 1.25},
		{"on a bucket's bound", []quantile.Bucket{{1, 10}, {2, 20}, {inf, 20}}, 0.5, 1},
		{"in the +Inf bucket: the last finite bound", []quantile.Bucket{{1, 10}, {2, 10}, {inf, 20}}, 0.99, 2},
		{"q 1 with every observation finite", []quantile.Bucket{{0.5, 4}, {1, 8}, {inf, 8}}, 1, 1},
		{"no +Inf bucket", []quantile.Bucket{{0.1, 1}, {0.2, 2}}, 0.75, 0.15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := quantile.Histogram(tc.bs, tc.q)
			if math.IsNaN(tc.want) {
				if !math.IsNaN(got) {
					t.Fatalf("Histogram = %v, want NaN", got)
				}
				return
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("Histogram(%v, %v) = %v, want %v", tc.bs, tc.q, got, tc.want)
			}
		})
	}
}

func TestDelta(t *testing.T) {
	inf := math.Inf(1)
	before := []quantile.Bucket{{inf, 10}, {1, 4}}
	after := []quantile.Bucket{{inf, 30}, {2, 20}, {1, 14}}
	got := quantile.Delta(before, after)
	want := []quantile.Bucket{{1, 10}, {2, 20}, {inf, 20}}
	if len(got) != len(want) {
		t.Fatalf("Delta = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Delta = %v, want %v", got, want)
		}
	}
	if q := quantile.Histogram(got, 0.5); q != 1 {
		t.Fatalf("median of the delta = %v, want 1", q)
	}
}
