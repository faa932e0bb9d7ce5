package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/recoverer"
)

// TestReportBreakerDefaults: `sentinel report cohort_failure_rate` with no
// flags judges cohorts with the recoverer's own breaker parameters.
func TestReportBreakerDefaults(t *testing.T) {
	require.Equal(t, recoverer.DefaultBreakerMinSample, analytics.DefaultMinSample)
	require.Equal(t, recoverer.DefaultBreakerThreshold, analytics.DefaultThreshold)
}

// TestReportRejectsZero: a zero on the command line is a value, not "the
// default" (--top 0 used to mean 5).
func TestReportRejectsZero(t *testing.T) {
	for _, args := range [][]string{
		{"report", "--top", "0", "top_problem_devices"},
		{"report", "--min-sample", "0", "cohort_failure_rate"},
		{"report", "--threshold", "0", "cohort_failure_rate"},
	} {
		var out bytes.Buffer
		require.ErrorContains(t, dispatch(context.Background(), args, &out), "must be above 0", "%v", args)
	}
}
