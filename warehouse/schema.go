package warehouse

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Migration is one versioned step of the schema. Its statements are
// idempotent (IF NOT EXISTS), so two services migrating at once, or a crash
// between a statement and the version record, do no harm.
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
	tableMigrations   = "schema_migrations"
)

// Migrations is the schema's history, oldest first. Append; never edit a
// released step.
var Migrations = []Migration{
	{
		Version: 1,
		Name:    "initial tables",
		Statements: []string{
			// Telemetry: a redelivered (device_id, seq) collapses into one row
			// in the background and at once under FINAL. The sort key leads
			// with region for the regional analytics; device_id, seq finish it
			// as the dedup key (a device's region never changes).
			`CREATE TABLE IF NOT EXISTS telemetry (
				device_id     String,
				region        LowCardinality(String),
				firmware      LowCardinality(String),
				state         LowCardinality(String),
				ts            DateTime64(3, 'UTC'),
				seq           UInt64,
				battery_pct   Float32,
				charging      Bool,
				rssi_dbm      Int16,
				temperature_c Float32,
				uptime_s      Int64,
				received_at   DateTime64(3, 'UTC')
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, seq)`,
			`CREATE TABLE IF NOT EXISTS status_events (
				device_id       String,
				region          LowCardinality(String),
				ts              DateTime64(3, 'UTC'),
				seq             UInt64,
				state           LowCardinality(String),
				firmware        LowCardinality(String),
				target_firmware LowCardinality(String),
				detail          String,
				command_id      String,
				action          LowCardinality(String),
				outcome         LowCardinality(String),
				received_at     DateTime64(3, 'UTC')
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, seq)`,
			`CREATE TABLE IF NOT EXISTS commands (
				command_id      String,
				device_id       String,
				region          LowCardinality(String),
				ts              DateTime64(3, 'UTC'),
				seq             UInt64,
				action          LowCardinality(String),
				target_firmware LowCardinality(String),
				reason          LowCardinality(String)
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, command_id)`,
			`CREATE TABLE IF NOT EXISTS decisions (
				device_id   String,
				region      LowCardinality(String),
				ts          DateTime64(3, 'UTC'),
				seq         UInt64,
				action      LowCardinality(String),
				reason      LowCardinality(String),
				command_id  String,
				state       LowCardinality(String),
				firmware    LowCardinality(String),
				battery_pct Float32,
				charging    Bool,
				rssi_dbm    Int16,
				attempt     UInt16
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, seq)`,
			`CREATE TABLE IF NOT EXISTS dead_letters (
				received_at   DateTime64(3, 'UTC'),
				topic         String,
				reason        LowCardinality(String),
				error         String,
				payload       String,
				payload_bytes UInt32
			) ENGINE = MergeTree
			PARTITION BY toDate(received_at)
			ORDER BY (reason, received_at)`,
		},
	},
}

// Dashboard views, version 2: per-minute rollups filled at insert time by
// materialized views (read them with the -Merge combinators, e.g.
// countMerge(readings)), and the latest state of every device.
func init() {
	Migrations = append(Migrations, Migration{
		Version: 2,
		Name:    "dashboard rollups and latest device state",
		Statements: []string{
			// Rollups count what was inserted; a redelivered message is
			// counted again in readings/events, but never in the uniq
			// columns, which dashboards should prefer for device counts.
			`CREATE TABLE IF NOT EXISTS telemetry_per_minute (
				minute      DateTime('UTC'),
				region      LowCardinality(String),
				firmware    LowCardinality(String),
				readings    AggregateFunction(count),
				devices     AggregateFunction(uniq, String),
				battery_avg AggregateFunction(avg, Float32),
				battery_min AggregateFunction(min, Float32),
				rssi_avg    AggregateFunction(avg, Int16)
			) ENGINE = AggregatingMergeTree
			PARTITION BY toDate(minute)
			ORDER BY (region, firmware, minute)`,
			`CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_per_minute_mv TO telemetry_per_minute AS
			SELECT
				toStartOfMinute(ts) AS minute, region, firmware,
				countState() AS readings, uniqState(device_id) AS devices,
				avgState(battery_pct) AS battery_avg, minState(battery_pct) AS battery_min, avgState(rssi_dbm) AS rssi_avg
			FROM telemetry
			GROUP BY minute, region, firmware`,
			`CREATE TABLE IF NOT EXISTS status_per_minute (
				minute          DateTime('UTC'),
				region          LowCardinality(String),
				target_firmware LowCardinality(String),
				state           LowCardinality(String),
				events          AggregateFunction(count),
				devices         AggregateFunction(uniq, String)
			) ENGINE = AggregatingMergeTree
			PARTITION BY toDate(minute)
			ORDER BY (region, target_firmware, state, minute)`,
			`CREATE MATERIALIZED VIEW IF NOT EXISTS status_per_minute_mv TO status_per_minute AS
			SELECT
				toStartOfMinute(ts) AS minute, region, target_firmware, state,
				countState() AS events, uniqState(device_id) AS devices
			FROM status_events
			GROUP BY minute, region, target_firmware, state`,
			// Exact, deduplicated, computed on read: the state a dashboard's
			// device table shows.
			`CREATE VIEW IF NOT EXISTS device_latest AS
			SELECT
				device_id,
				any(region) AS region,
				argMax(state, seq) AS state,
				argMax(firmware, seq) AS firmware,
				argMax(target_firmware, seq) AS target_firmware,
				max(ts) AS last_seen,
				max(seq) AS last_seq
			FROM status_events FINAL
			GROUP BY device_id`,
		},
	})
}

// Ground truth, version 3: what the simulator knows about each device of a
// run (what failed, what would have fixed it, how it ended), so a run of
// the recoverer can be scored with SQL against what really happened.
func init() {
	Migrations = append(Migrations, Migration{
		Version: 3,
		Name:    "simulator ground truth",
		Statements: []string{
			`CREATE TABLE IF NOT EXISTS ground_truth (
				run_id              String,
				device_id           String,
				region              LowCardinality(String),
				model               LowCardinality(String),
				to_firmware         LowCardinality(String),
				wave                UInt16,
				bad_build           Bool,
				power               LowCardinality(String),
				weak_signal         Bool,
				fate                LowCardinality(String),
				cause               LowCardinality(String),
				started             Bool,
				remedy              LowCardinality(String),
				retries_to_fix      UInt16,
				battery_at_failure  Float32,
				charging_at_failure Bool,
				final_state         LowCardinality(String),
				final_firmware      LowCardinality(String),
				battery_pct         Float32,
				commands            UInt32,
				retries             UInt32,
				rollbacks           UInt32,
				defers              UInt32,
				halts               UInt32,
				unsafe_commands     UInt32,
				bricked_by          String,
				verdict             LowCardinality(String)
			) ENGINE = ReplacingMergeTree
			ORDER BY (run_id, region, device_id)`,
		},
	})
}

// Migrate applies every migration not yet recorded in schema_migrations.
// It is safe to run at every start, from several processes.
func (db *DB) Migrate(ctx context.Context) error {
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
	for _, m := range Migrations {
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
