package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/recoverer"
)

// TestReportBreakerDefaults: the library passes the cohort_failure_rate
// view the recoverer's Wilson-rule parameters (--breaker-rule wilson).
func TestReportBreakerDefaults(t *testing.T) {
	require.Equal(t, recoverer.DefaultBreakerMinSample, analytics.DefaultMinSample)
	require.Equal(t, recoverer.DefaultBreakerThreshold, analytics.DefaultThreshold)
}

// TestReportRejectsZero: a zero on the command line is a value, not "the
// default" (--top 0 used to mean 5).
func TestReportRejectsZero(t *testing.T) {
	var out bytes.Buffer
	require.ErrorContains(t, dispatch(context.Background(), []string{"report", "--top", "0", "top_problem_devices"}, &out), "--top 0: must be at least 1")
}
