package querytime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/bench/querytime"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// TestRun fills a small warehouse and times one query: the header names
// the rows generated, and the query's line has its rows and three times.
func TestRun(t *testing.T) {
	db := warehousetest.Open(t)
	cfg := querytime.Config{Rows: 5000, EventsPerDevice: 50, Runs: 2, Queries: []string{"regional_ranking"}, Optimize: true}
	var out strings.Builder
	require.NoError(t, querytime.Run(context.Background(), db, cfg, &out))
	text := out.String()
	require.Contains(t, text, "optimized in ")
	require.Contains(t, text, " 5000 status_events rows in 1 parts")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	f := strings.Fields(lines[len(lines)-1])
	require.Len(t, f, 5, text)
	require.Equal(t, "regional_ranking", f[0])
	require.NotEqual(t, "0", f[1], "the ranking has rows over generated events")

	require.Error(t, querytime.Run(context.Background(), db, querytime.Config{Runs: 1, Queries: []string{"no_such_query"}}, &out))
}
