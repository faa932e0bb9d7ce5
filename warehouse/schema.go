package warehouse

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Migration is one versioned step of the schema, one file of migrations/
// (see Migrations). Its statements are idempotent (IF NOT EXISTS), so two
// services migrating at once, or a crash between a statement and the
// version record, do no harm.
type Migration struct {
	// Version orders migrations; each is applied once.
	Version int
	// Name says what the step does.
	Name string
	// Statements are run in order.
	Statements []string
}

// Table names, for callers that insert or query.
const (
	TableTelemetry    = "telemetry"
	TableStatusEvents = "status_events"
	TableCommands     = "commands"
	TableDecisions    = "decisions"
	TableDeadLetters  = "dead_letters"
	// TableBreakerVerdicts is the cohort breaker's log (migration 14): a
	// row each time a cohort's verdict or evidence changes. The recoverer
	// rebuilds its latched verdicts from it; analysts read it.
	TableBreakerVerdicts = "breaker_verdicts"
	tableMigrations      = "schema_migrations"
)

// ViewCohortFailureRate is the cohort breaker's input (migrations 4, 7 and
// 9): a parameterized view giving, per (target firmware, region), the
// devices that started the update in [since, until), how many of them
// failed at least once, the failure rate, the same over the devices whose
// update has settled, and whether the cohort trips the breaker. It is the
// one definition of that input: the recoverer's breaker and the analytics
// query cohort_failure_rate both select from it. Call it with every
// parameter, empty firmware and region meaning all:
//
//	SELECT * FROM cohort_failure_rate(since = '2026-01-01 00:00:00', until = '2200-01-01 00:00:00',
//	    firmware = '', region = '', min_sample = 20, threshold = 0.25)
const ViewCohortFailureRate = "cohort_failure_rate"

// ViewCohortBreakerCounts is the v2 cohort breaker's input (migration
// 14): a parameterized view giving, per (firmware, region), cumulative
// counts since a lookback start: devices, settled and failed devices with
// devices silent past their state's deadline counted as both, the
// firmware the cohort came from (its baseline's row), and release health
// from telemetry (run hours, reboots, battery points lost over hours off
// the charger, devices reporting and gone quiet). The recoverer's breaker
// and the analytics query cohort_breaker both select from it:
//
//	SELECT * FROM cohort_breaker_counts(since = '2026-01-01 00:00:00', until = '2200-01-01 00:00:00',
//	    now = '2026-01-02 00:00:00', dl_downloading = 600, dl_verifying = 120, dl_installing = 300,
//	    dl_rebooting = 180, quiet_s = 120)
const ViewCohortBreakerCounts = "cohort_breaker_counts"

// TableRolloutDevicesHourly is the rollout rollup (migration 5): per target
// firmware, region and hour, the set of devices that started an update,
// that reported partial, and that failed in any way, kept as exact
// distinct-count states (uniqExact). Sets are idempotent, so redelivered
// events change nothing, and they merge exactly across hours: a ranking
// over a hundred million events reads a few thousand rows instead. Read it
// with uniqExactMerge(started) etc., or union it with uniqExactIfState over
// raw status_events for the part of a window that is not whole hours (the
// regional_ranking query does).
const TableRolloutDevicesHourly = "rollout_devices_hourly"

// TableStateTimeouts is the per-state timeout table (migration 13): how
// long, in milliseconds (timeout_ms), a device may sit in one OTA state
// before it counts as stuck. The recoverer reads it at start and the
// analytics query stuck_devices joins it, so the two cannot use different
// numbers. Read it with FINAL: the row with the latest updated_at of a
// state wins, so an operator changes a timeout by inserting a row.
const TableStateTimeouts = "state_timeouts"

// Migrate applies every migration not yet recorded in schema_migrations.
// It is safe to run at every start, from several processes.
func (db *DB) Migrate(ctx context.Context) error {
	return db.migrate(ctx, Migrations)
}

// migrate applies the migrations of ms not yet recorded.
func (db *DB) migrate(ctx context.Context, ms []Migration) error {
	err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tableMigrations+` (
		version    UInt32,
		name       String,
		applied_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree ORDER BY version`)
	if err != nil {
		return fmt.Errorf("warehouse: migrate: %w", err)
	}
	res, err := db.Query(ctx, "SELECT version FROM "+tableMigrations+" FINAL")
	if err != nil {
		return fmt.Errorf("warehouse: migrate: %w", err)
	}
	applied := map[int]bool{}
	for _, r := range res.Rows {
		v, _ := strconv.Atoi(r[0])
		applied[v] = true
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := db.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("warehouse: migration %d (%s), statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		rec := []migrationRow{{Version: uint32(m.Version), Name: m.Name, AppliedAt: time.Now().UTC().Truncate(time.Second)}}
		if err := Insert(ctx, db, tableMigrations, rec); err != nil {
			return fmt.Errorf("warehouse: record migration %d: %w", m.Version, err)
		}
		db.log.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	return nil
}

type migrationRow struct {
	Version   uint32    `ch:"version" json:"version"`
	Name      string    `ch:"name" json:"name"`
	AppliedAt time.Time `ch:"applied_at" json:"applied_at"`
}
