package promtext_test

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/bench/promtext"
	"github.com/sentinel-iot/sentinel/quantile"
)

const scrape = `# HELP sentinel_ingest_commit_lag_seconds From receipt to commit.
# TYPE sentinel_ingest_commit_lag_seconds histogram
sentinel_ingest_commit_lag_seconds_bucket{table="status",le="0.1"} 99
sentinel_ingest_commit_lag_seconds_bucket{table="telemetry",le="0.1"} 10
sentinel_ingest_commit_lag_seconds_bucket{table="telemetry",le="0.5"} 30
sentinel_ingest_commit_lag_seconds_bucket{table="telemetry",le="+Inf"} 40
sentinel_ingest_commit_lag_seconds_sum{table="telemetry"} 7.5
sentinel_ingest_inserted_rows_total{table="telemetry"} 1.5e+06
go_goroutines 12
a line without a value
`

func TestParseAndBuckets(t *testing.T) {
	s, err := promtext.Parse(strings.NewReader(scrape))
	require.NoError(t, err)
	require.Equal(t, 1.5e6, s.Value(`sentinel_ingest_inserted_rows_total{table="telemetry"}`))
	require.Equal(t, 12.0, s.Value("go_goroutines"))
	require.Zero(t, s.Value("missing"))

	bs := quantile.Delta(nil, s.Buckets("sentinel_ingest_commit_lag_seconds", `table="telemetry"`))
	require.Equal(t, []quantile.Bucket{{UpperBound: 0.1, Count: 10}, {UpperBound: 0.5, Count: 30}, {UpperBound: math.Inf(1), Count: 40}}, bs)
	require.InDelta(t, 0.3, quantile.Histogram(bs, 0.5), 1e-12)
	require.Len(t, s.Buckets("sentinel_ingest_commit_lag_seconds", `table="status"`), 1)
	require.Empty(t, s.Buckets("sentinel_ingest_commit_lag_seconds", ""), "labels must match exactly")
}
