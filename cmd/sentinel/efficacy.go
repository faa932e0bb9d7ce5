package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// efficacy is one controller's score against the simulator's ground truth.
type efficacy struct {
	Policy                 string
	Recoverable, Recovered int64
	// InGuards and InGuardsRecovered count the recoverable devices whose
	// battery at failure allowed a command under the guards (at least the
	// retry minimum, or charging at ChargingMinBattery), and how many of
	// those recovered.
	InGuards, InGuardsRecovered int64
	UnsafeRollbacks             int64 // rollbacks decided below the floor without a charger
	UnsafeCommands              int64 // retries and rollbacks started under the brick level (device side)
	Bricked                     int64 // devices bricked by a command
	Escalated                   int64 // devices halted for a person
	Commands                    int64 // commands devices received
	TTRp50, TTRp90              float64
	BadBuildFailedAtTrip        int64 // bad-build devices failed when the breaker tripped; -1 if it never did
}

// scoreRun computes a run's efficacy: runID selects its ground truth,
// [from, to) its status events and decisions.
func scoreRun(ctx context.Context, db *warehouse.DB, name, runID string, from, to time.Time, pc policy.Config) (efficacy, error) {
	pc = pc.WithDefaults()
	const layout = "2006-01-02 15:04:05.000"
	params := warehouse.WithParams(map[string]string{
		"run": runID, "from": from.UTC().Format(layout), "to": to.UTC().Format(layout),
		"floor":    strconv.FormatFloat(pc.RollbackMinBattery, 'g', -1, 64),
		"guard":    strconv.FormatFloat(pc.RetryMinBattery, 'g', -1, 64),
		"charging": strconv.FormatFloat(pc.ChargingMinBattery, 'g', -1, 64),
	})
	e := efficacy{Policy: name, BadBuildFailedAtTrip: -1}
	q := func(sql string) ([]string, error) {
		res, err := db.Query(ctx, sql, params)
		if err != nil {
			return nil, fmt.Errorf("score %s: %w", name, err)
		}
		if len(res.Rows) == 0 {
			return make([]string, len(res.Columns)), nil
		}
		return res.Rows[0], nil
	}
	atoi := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	atof := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }

	r, err := q(`SELECT
	countIf(started AND remedy NOT IN ('none', 'unrecoverable')),
	countIf(started AND remedy NOT IN ('none', 'unrecoverable') AND verdict = 'recovered'),
	sum(unsafe_commands), countIf(verdict = 'bricked_by_command'), sum(commands),
	countIf(started AND remedy NOT IN ('none', 'unrecoverable', 'charge_first') AND (battery_at_failure >= {guard:Float64} OR (charging_at_failure AND battery_at_failure >= {charging:Float64}))),
	countIf(started AND remedy NOT IN ('none', 'unrecoverable', 'charge_first') AND (battery_at_failure >= {guard:Float64} OR (charging_at_failure AND battery_at_failure >= {charging:Float64})) AND verdict = 'recovered')
FROM ground_truth FINAL WHERE run_id = {run:String}`)
	if err != nil {
		return e, err
	}
	e.Recoverable, e.Recovered, e.UnsafeCommands, e.Bricked, e.Commands = atoi(r[0]), atoi(r[1]), atoi(r[2]), atoi(r[3]), atoi(r[4])
	e.InGuards, e.InGuardsRecovered = atoi(r[5]), atoi(r[6])

	if r, err = q(`SELECT
	countIf(action = 'rollback' AND battery_pct < {floor:Float64} AND NOT charging),
	uniqExactIf(device_id, action = 'halt'),
	minIf(ts, reason = 'cohort_tripped')
FROM decisions FINAL WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}`); err != nil {
		return e, err
	}
	e.UnsafeRollbacks, e.Escalated = atoi(r[0]), atoi(r[1])
	if trip := r[2]; trip != "" && !startsWith(trip, "1970") {
		n, err := db.QueryInt(ctx, `SELECT uniqExact(device_id) FROM status_events FINAL
WHERE received_at >= {from:DateTime64(3, 'UTC')} AND ts < {trip:DateTime64(3, 'UTC')}
	AND state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')
	AND device_id IN (SELECT device_id FROM ground_truth FINAL WHERE run_id = {run:String} AND bad_build)`,
			warehouse.WithParams(map[string]string{"run": runID, "from": from.UTC().Format(layout), "trip": trip}))
		if err != nil {
			return e, fmt.Errorf("score %s: %w", name, err)
		}
		e.BadBuildFailedAtTrip = n
	}

	if r, err = q(`SELECT quantileExact(0.5)(ttr), quantileExact(0.9)(ttr) FROM (
	SELECT device_id,
		minIf(ts, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed_at,
		maxIf(ts, state IN ('updated', 'rolled_back')) AS ok_at,
		dateDiff('millisecond', failed_at, ok_at) / 1000 AS ttr
	FROM status_events FINAL
	WHERE received_at >= {from:DateTime64(3, 'UTC')} AND received_at < {to:DateTime64(3, 'UTC')}
		AND device_id IN (SELECT device_id FROM ground_truth FINAL WHERE run_id = {run:String} AND verdict = 'recovered')
	GROUP BY device_id
	HAVING ok_at > failed_at AND failed_at > toDateTime64('1971-01-01', 3, 'UTC'))`); err != nil {
		return e, err
	}
	e.TTRp50, e.TTRp90 = atof(r[0]), atof(r[1])
	return e, nil
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// pct returns part/whole in percent, 0 for an empty whole.
func pct(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// writeEfficacy prints the comparison table, one row per controller.
func writeEfficacy(out io.Writer, es []efficacy) {
	fmt.Fprintln(out, "| controller | recovered / recoverable | recovered, battery allowed a command | rollbacks below floor | unsafe commands (device) | bricked by a command | escalated (halted) | TTR p50 s | TTR p90 s | commands / recovered | bad-build devices failed at breaker trip |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, e := range es {
		per := 0.0
		if e.Recovered > 0 {
			per = float64(e.Commands) / float64(e.Recovered)
		}
		trip := "never"
		if e.BadBuildFailedAtTrip >= 0 {
			trip = strconv.FormatInt(e.BadBuildFailedAtTrip, 10)
		}
		fmt.Fprintf(out, "| %s | %d / %d = %.1f %% | %d / %d = %.1f %% | %d | %d | %d | %d | %.1f | %.1f | %.2f | %s |\n",
			e.Policy, e.Recovered, e.Recoverable, pct(e.Recovered, e.Recoverable),
			e.InGuardsRecovered, e.InGuards, pct(e.InGuardsRecovered, e.InGuards), e.UnsafeRollbacks, e.UnsafeCommands,
			e.Bricked, e.Escalated, e.TTRp50, e.TTRp90, per, trip)
	}
}

// percentile returns the q-quantile (0..1) of ds, nearest rank.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
