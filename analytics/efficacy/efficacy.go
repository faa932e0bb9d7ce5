// Package efficacy scores a recovery controller's run against the
// simulator's ground truth: how many of the devices that could be repaired
// were, at what risk, how fast and at what cost in commands. `sentinel run`,
// `sentinel bench recover` and `sentinel report efficacy` print its table;
// the numbers come from the warehouse, as an analyst would compute them.
//
// A run is the set of devices in one run_id of the ground_truth table,
// inside the time window the run recorded there (migration 8). Runs of one
// seeded fleet reuse device IDs and seq numbers, so the window, not FINAL,
// tells their status events, readings and decisions apart.
package efficacy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// ErrNoRuns means the warehouse holds no ground truth: score a run made by
// `sentinel run` or `sentinel bench recover`, which store it.
var ErrNoRuns = errors.New("efficacy: no ground truth in the warehouse (it is stored by `sentinel run` and `sentinel bench recover`)")

// Guards are the battery thresholds of the safety envelope: the levels, in
// percent, under which a guarded controller refuses a command. They decide
// which recoverable devices a safe controller could have repaired in the
// run (Score.SafelyRecoverable). Pass the policy's own thresholds.
type Guards struct {
	// RetryMinBattery is the battery a retry needs without a charger.
	RetryMinBattery float64
	// RollbackMinBattery is the rollback floor without a charger.
	RollbackMinBattery float64
	// ChargingMinBattery is the battery from which a charger stands in for
	// the other two.
	ChargingMinBattery float64
}

// Run is one scored run: a controller driving one seeded fleet.
type Run struct {
	// ID is the ground truth's run_id.
	ID string `json:"run_id"`
	// Controller names the recovery controller ("sentinel" or a baseline).
	Controller string `json:"controller"`
	// Started and Ended bound the run's events.
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
}

// Score is one run's efficacy. JSON field names are stable: baseline runs
// in child processes hand their score to the parent as JSON.
type Score struct {
	Run
	// Recoverable counts the devices whose update failed and which the
	// ground truth says a command (or a charge, then a command) repairs.
	Recoverable int64 `json:"recoverable"`
	// Recovered counts those that ended updated or rolled back.
	Recovered int64 `json:"recovered"`
	// SafelyRecoverable narrows Recoverable to the devices whose battery,
	// at some point between their failure and the end of the run, allowed
	// the command their remedy needs under the Guards: a retry for retry
	// remedies, a rollback for rollback remedies and for bad-build devices
	// (a retry re-flashes a known-bad image), a charge for charge_first.
	// A battery-only device at 25 % never gets there: repairing it takes a
	// person with a charger, or a gamble with the device.
	SafelyRecoverable int64 `json:"safely_recoverable"`
	// SafelyRecovered counts those that recovered.
	SafelyRecovered int64 `json:"safely_recovered"`
	// UnsafeRollbacks counts rollbacks decided below the rollback floor
	// without a charger (from the decisions table).
	UnsafeRollbacks int64 `json:"unsafe_rollbacks"`
	// UnsafeCommands counts retries and rollbacks a device started under
	// its brick level (the device's side, from the ground truth).
	UnsafeCommands int64 `json:"unsafe_commands"`
	// Bricked counts devices a command bricked.
	Bricked int64 `json:"bricked"`
	// Escalated counts devices halted for a person.
	Escalated int64 `json:"escalated"`
	// Commands counts the commands devices received.
	Commands int64 `json:"commands"`
	// TTRp50 and TTRp90 are the time from a device's first failure to its
	// recovery, in seconds, over the recovered devices.
	TTRp50 float64 `json:"ttr_p50_s"`
	TTRp90 float64 `json:"ttr_p90_s"`
	// BadBuildFailedAtTrip counts bad-build devices that had failed when
	// the cohort breaker halted the bad build's own cohort (its first halt
	// verdict in breaker_verdicts for the bad build's firmware and region);
	// -1 if it never did. A halt of another cohort (a healthy region
	// tripped by mistake) does not count: before migration 14 this was the
	// first trip of any cohort, which printed a number for a halt of the
	// bad build that never happened.
	BadBuildFailedAtTrip int64 `json:"bad_build_failed_at_trip"`
}

// failedStates is the SQL list of the states a failed update rests in.
const failedStates = `('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')`

// timeLayout formats times for DateTime64(3) query parameters.
const timeLayout = "2006-01-02 15:04:05.000"

// Runs lists the runs in the warehouse's ground truth, oldest first. A run
// stored before migration 8 has no window: it starts at the zero time and
// ends where the next run starts (or never).
func Runs(ctx context.Context, db *warehouse.DB) ([]Run, error) {
	res, err := db.Query(ctx, `SELECT run_id, any(controller), min(run_started), max(run_ended)
FROM ground_truth FINAL GROUP BY run_id ORDER BY min(run_started), run_id`)
	if err != nil {
		return nil, fmt.Errorf("efficacy: list runs: %w", err)
	}
	if len(res.Rows) == 0 {
		return nil, ErrNoRuns
	}
	runs := make([]Run, 0, len(res.Rows))
	for _, r := range res.Rows {
		run := Run{ID: r[0], Controller: r[1]}
		run.Started, _ = parseTime(r[2])
		run.Ended, _ = parseTime(r[3])
		if run.Controller == "" {
			run.Controller = run.ID
		}
		runs = append(runs, run)
	}
	for i := range runs {
		if runs[i].Ended.IsZero() || runs[i].Ended.Unix() <= 0 {
			runs[i].Ended = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
			if i+1 < len(runs) && runs[i+1].Started.Unix() > 0 {
				runs[i].Ended = runs[i+1].Started
			}
		}
	}
	return runs, nil
}

// Verdicts scores one run against the simulator's ground truth, device
// by device: how each ended (its verdict) by what would have fixed it
// (its remedy), with the unsafe commands sent, most devices first. It is
// the table `sentinel run` prints under the ranking.
func Verdicts(ctx context.Context, db *warehouse.DB, runID string) (*warehouse.Result, error) {
	res, err := db.Query(ctx, `
SELECT verdict, remedy, count() AS devices, sum(unsafe_commands) AS unsafe_commands
FROM ground_truth FINAL
WHERE run_id = {run:String}
GROUP BY verdict, remedy
ORDER BY devices DESC, verdict, remedy`, warehouse.WithParams(map[string]string{"run": runID}))
	if err != nil {
		return nil, fmt.Errorf("efficacy: verdicts of run %s: %w", runID, err)
	}
	return res, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{timeLayout, "2006-01-02 15:04:05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("efficacy: cannot parse time %q", s)
}

// ComputeAll scores every run the warehouse holds ground truth for, oldest
// first (see Runs), under the same guards, as `sentinel report efficacy`
// prints them. It returns ErrNoRuns when there is none.
func ComputeAll(ctx context.Context, db *warehouse.DB, g Guards) ([]Run, []Score, error) {
	runs, err := Runs(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	scores := make([]Score, 0, len(runs))
	for _, r := range runs {
		s, err := Compute(ctx, db, r, g)
		if err != nil {
			return runs, scores, err
		}
		scores = append(scores, s)
	}
	return runs, scores, nil
}

// Compute scores one run.
func Compute(ctx context.Context, db *warehouse.DB, run Run, g Guards) (Score, error) {
	params := warehouse.WithParams(map[string]string{
		"run": run.ID, "from": run.Started.UTC().Format(timeLayout), "to": run.Ended.UTC().Format(timeLayout),
		"floor":    strconv.FormatFloat(g.RollbackMinBattery, 'g', -1, 64),
		"guard":    strconv.FormatFloat(g.RetryMinBattery, 'g', -1, 64),
		"charging": strconv.FormatFloat(g.ChargingMinBattery, 'g', -1, 64),
	})
	s := Score{Run: run, BadBuildFailedAtTrip: -1}
	row := func(what, sql string) ([]string, error) {
		res, err := db.Query(ctx, sql, params)
		if err != nil {
			return nil, fmt.Errorf("efficacy: score %s of run %s: %w", what, run.ID, err)
		}
		if len(res.Rows) == 0 {
			return make([]string, len(res.Columns)), nil
		}
		return res.Rows[0], nil
	}
	r, err := row("recoveries", sqlRecoveries)
	if err != nil {
		return s, err
	}
	s.Recoverable, s.Recovered, s.SafelyRecoverable, s.SafelyRecovered = atoi(r[0]), atoi(r[1]), atoi(r[2]), atoi(r[3])
	s.UnsafeCommands, s.Bricked, s.Commands = atoi(r[4]), atoi(r[5]), atoi(r[6])

	if r, err = row("decisions", sqlDecisions); err != nil {
		return s, err
	}
	s.UnsafeRollbacks, s.Escalated = atoi(r[0]), atoi(r[1])
	if r[2] == "1" {
		s.BadBuildFailedAtTrip = atoi(r[3])
	}
	if r, err = row("time to recover", sqlTTR); err != nil {
		return s, err
	}
	s.TTRp50, s.TTRp90 = atof(r[0]), atof(r[1])
	return s, nil
}

// sqlRecoveries counts recoverable and recovered devices, overall and
// within the safety envelope, from the ground truth and the readings each
// device sent after its first failure.
const sqlRecoveries = `
WITH
	truth AS (SELECT * FROM ground_truth FINAL WHERE run_id = {run:String}),
	failed AS (
		SELECT device_id, min(received_at) AS failed_at FROM status_events
		WHERE received_at >= {from:DateTime64(3, 'UTC')} AND received_at < {to:DateTime64(3, 'UTC')}
			AND state IN ` + failedStates + `
			AND device_id IN (SELECT device_id FROM truth WHERE started AND remedy NOT IN ('none', 'unrecoverable'))
		GROUP BY device_id),
	after AS (
		SELECT t.device_id AS device_id, max(t.battery_pct) AS battery, maxIf(t.battery_pct, t.charging) AS charging_battery
		FROM telemetry AS t INNER JOIN failed AS f ON t.device_id = f.device_id
		WHERE t.received_at >= f.failed_at AND t.received_at < {to:DateTime64(3, 'UTC')}
		GROUP BY t.device_id),
	scored AS (
		SELECT truth.*, started AND remedy NOT IN ('none', 'unrecoverable') AS recoverable,
			verdict = 'recovered' AS recovered,
			greatest(a.battery, truth.battery_at_failure) AS best_battery,
			greatest(a.charging_battery, if(truth.charging_at_failure, truth.battery_at_failure, 0)) AS best_charging,
			recoverable AND multiIf(
				remedy = 'charge_first', best_charging >= {charging:Float64},
				remedy = 'rollback' OR bad_build, best_battery >= {floor:Float64} OR best_charging >= {charging:Float64},
				best_battery >= {guard:Float64} OR best_charging >= {charging:Float64}) AS safe
		FROM truth LEFT JOIN after AS a ON a.device_id = truth.device_id)
SELECT countIf(recoverable), countIf(recoverable AND recovered), countIf(safe), countIf(safe AND recovered),
	sum(unsafe_commands), countIf(verdict = 'bricked_by_command'), sum(commands)
FROM scored`

// sqlDecisions counts unsafe rollbacks and escalations in the run's
// decisions, and the bad-build devices failed when the breaker halted the
// bad build's cohort.
const sqlDecisions = `
WITH
	devices AS (SELECT device_id, bad_build FROM ground_truth FINAL WHERE run_id = {run:String}),
	d AS (
		SELECT * FROM decisions FINAL
		WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
			AND device_id IN (SELECT device_id FROM devices)),
	bad AS (SELECT DISTINCT to_firmware, region FROM ground_truth FINAL WHERE run_id = {run:String} AND bad_build),
	trip AS (
		SELECT count() > 0 AS tripped, min(ts) AS at FROM breaker_verdicts
		WHERE verdict = 'halt' AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}
			AND (firmware, region) IN (SELECT to_firmware, region FROM bad))
SELECT
	(SELECT countIf(action = 'rollback' AND battery_pct < {floor:Float64} AND NOT charging) FROM d),
	(SELECT uniqExactIf(device_id, action = 'halt') FROM d),
	(SELECT tripped FROM trip),
	(SELECT uniqExact(device_id) FROM status_events
		WHERE received_at >= {from:DateTime64(3, 'UTC')} AND received_at < (SELECT at FROM trip)
			AND state IN ` + failedStates + `
			AND device_id IN (SELECT device_id FROM devices WHERE bad_build))`

// sqlTTR is the time from first failure to recovery over recovered devices.
const sqlTTR = `
SELECT quantileExact(0.5)(ttr), quantileExact(0.9)(ttr) FROM (
	SELECT device_id,
		minIf(ts, state IN ` + failedStates + `) AS failed_at,
		maxIf(ts, state IN ('updated', 'rolled_back')) AS ok_at,
		dateDiff('millisecond', failed_at, ok_at) / 1000 AS ttr
	FROM status_events
	WHERE received_at >= {from:DateTime64(3, 'UTC')} AND received_at < {to:DateTime64(3, 'UTC')}
		AND device_id IN (SELECT device_id FROM ground_truth FINAL WHERE run_id = {run:String} AND verdict = 'recovered')
	GROUP BY device_id
	HAVING ok_at > failed_at AND failed_at > toDateTime64('1971-01-01', 3, 'UTC'))`

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// ratio prints part / whole with the percentage, or no percentage for an
// empty whole.
func ratio(part, whole int64) string {
	if whole == 0 {
		return fmt.Sprintf("%d / %d", part, whole)
	}
	return fmt.Sprintf("%d / %d = %.1f %%", part, whole, 100*float64(part)/float64(whole))
}

// Columns are the headings of WriteTable, in order.
var Columns = []string{
	"controller", "recovered / recoverable", "recovered / safely recoverable", "rollbacks below floor",
	"unsafe commands (device)", "bricked by a command", "escalated (halted)", "TTR p50 s", "TTR p90 s",
	"commands / recovered", "bad-build devices failed at the bad cohort's halt",
}

// Cells returns the score's row of the table, as text.
func (s Score) Cells() []string {
	per := 0.0
	if s.Recovered > 0 {
		per = float64(s.Commands) / float64(s.Recovered)
	}
	trip := "never"
	if s.BadBuildFailedAtTrip >= 0 {
		trip = strconv.FormatInt(s.BadBuildFailedAtTrip, 10)
	}
	return []string{
		s.Controller,
		ratio(s.Recovered, s.Recoverable),
		ratio(s.SafelyRecovered, s.SafelyRecoverable),
		strconv.FormatInt(s.UnsafeRollbacks, 10), strconv.FormatInt(s.UnsafeCommands, 10),
		strconv.FormatInt(s.Bricked, 10), strconv.FormatInt(s.Escalated, 10),
		fmt.Sprintf("%.1f", s.TTRp50), fmt.Sprintf("%.1f", s.TTRp90), fmt.Sprintf("%.2f", per), trip,
	}
}

// WriteTable prints the comparison table as Markdown, one row per score.
func WriteTable(w io.Writer, scores []Score) error {
	line := func(cells []string) string {
		out := "|"
		for _, c := range cells {
			out += " " + c + " |"
		}
		return out + "\n"
	}
	sep := make([]string, len(Columns))
	for i := range sep {
		sep[i] = "---"
	}
	text := line(Columns) + line(sep)
	for _, s := range scores {
		text += line(s.Cells())
	}
	_, err := io.WriteString(w, text)
	return err
}

// WriteJSON writes the scores as a JSON array.
func WriteJSON(w io.Writer, scores []Score) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(scores)
}
