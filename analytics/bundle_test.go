package analytics_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
)

// TestAnalysisQueriesFile keeps analysis_queries.sql, the file analysts
// paste into clickhouse-client, equal to the library.
func TestAnalysisQueriesFile(t *testing.T) {
	want, err := analytics.Bundle()
	require.NoError(t, err)
	if os.Getenv("SENTINEL_UPDATE_GOLDEN") != "" {
		require.NoError(t, os.WriteFile("analysis_queries.sql", []byte(want), 0o644))
	}
	got, err := os.ReadFile("analysis_queries.sql")
	require.NoError(t, err)
	require.Equal(t, want, string(got), "analysis_queries.sql is stale: run SENTINEL_UPDATE_GOLDEN=1 go test ./analytics")
	qs, err := analytics.Queries()
	require.NoError(t, err)
	require.Equal(t, len(qs), strings.Count(want, "\n-- name: "), "every query is in the file once")
}
