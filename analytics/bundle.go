package analytics

import (
	"fmt"
	"strconv"
	"strings"
)

// The defaults the header's example passes.
var (
	top       = strconv.Itoa(DefaultTop)
	minSample = strconv.Itoa(DefaultMinSample)
	threshold = strconv.FormatFloat(DefaultThreshold, 'f', -1, 64)
)

// bundleHeader opens analysis_queries.sql: how to run the file as it is.
var bundleHeader = `-- Sentinel analysis queries: the whole library in one file.
--
-- Generated from analytics/queries/*.sql (edit those, then run
-- ` + "`SENTINEL_UPDATE_GOLDEN=1 go test ./analytics`" + `); each query is tested on the
-- embedded ClickHouse engine against an independent computation. The
-- warehouse's migrations must have run (warehouse/migrations): queries read
-- its views and tables (cohort_failure_rate, breaker_verdicts,
-- rollout_devices_hourly, state_timeouts, status_events.acknowledgement).
--
-- Every query takes the same parameters; pass them to clickhouse-client:
--
--   clickhouse-client --multiquery \
--     --param_since='1970-01-01 00:00:00' --param_until='2200-01-01 00:00:00' \
--     --param_firmware='' --param_region='' \
--     --param_top=` + top + ` --param_min_sample=` + minSample + ` --param_threshold=` + threshold + ` \
--     < analysis_queries.sql
--
-- or, in an interactive session, SET param_since = '2026-11-27 00:00:00'; etc.
-- since/until bound event time [since, until); firmware and region ''
-- mean all; top bounds per-group lists; min_sample and threshold are the
-- parameters of the view cohort_failure_rate (migration 9's Wilson rule,
-- the recoverer's --breaker-rule wilson defaults above). A redelivered MQTT
-- message never counts twice: a query reads a table with FINAL, or only
-- through aggregates a repeated row cannot change (max, min, argMax by
-- seq, distinct devices), and each says which where it reads.
`

// Bundle returns the whole library as one SQL file for clickhouse-client:
// a header saying how to pass the parameters, then every query, each ended
// with a semicolon.
func Bundle() (string, error) {
	qs, err := Queries()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(bundleHeader)
	for _, q := range qs {
		fmt.Fprintf(&b, "\n-- %s\n\n%s;\n", strings.Repeat("=", 74), strings.TrimRight(q.SQL, "\n "))
	}
	return b.String(), nil
}
