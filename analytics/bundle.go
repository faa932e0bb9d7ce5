package analytics

import (
	"fmt"
	"strings"
)

// bundleHeader opens analysis_queries.sql: how to run the file as it is.
const bundleHeader = `-- Sentinel analysis queries: the whole library in one file.
--
-- Generated from analytics/queries/*.sql (edit those, then run
-- ` + "`SENTINEL_UPDATE_GOLDEN=1 go test ./analytics`" + `); each query is tested on the
-- embedded ClickHouse engine against an independent computation.
--
-- Every query takes the same parameters; pass them to clickhouse-client:
--
--   clickhouse-client --multiquery \
--     --param_since='1970-01-01 00:00:00' --param_until='2200-01-01 00:00:00' \
--     --param_firmware='' --param_region='' \
--     --param_top=5 --param_min_sample=20 --param_threshold=0.25 \
--     < analysis_queries.sql
--
-- or, in an interactive session, SET param_since = '2026-11-27 00:00:00'; etc.
-- since/until bound event time [since, until); firmware and region ''
-- mean all; top bounds per-group lists; min_sample and threshold drive the
-- cohort breaker. Tables are read with FINAL, so redelivered MQTT messages
-- never count twice.
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
