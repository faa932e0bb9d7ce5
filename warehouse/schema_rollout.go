package warehouse

// TableRolloutDevicesHourly is the rollout rollup, version 5: per target
// firmware, region and hour, the set of devices that started an update,
// that reported partial, and that failed in any way, kept as exact
// distinct-count states (uniqExact). Sets are idempotent, so redelivered
// events change nothing, and they merge exactly across hours: a ranking
// over a hundred million events reads a few thousand rows instead. Read it
// with uniqExactMerge(started) etc., or union it with uniqExactIfState over
// raw status_events for the part of a window that is not whole hours (the
// regional_ranking query does).
const TableRolloutDevicesHourly = "rollout_devices_hourly"

// rolloutSelect is the aggregation both the materialized view and the
// backfill run.
const rolloutSelect = `
			SELECT
				toStartOfHour(ts) AS hour,
				target_firmware,
				region,
				uniqExactIfState(device_id, state NOT IN ('idle', 'offline')) AS started,
				uniqExactIfState(device_id, state = 'partial') AS partial,
				uniqExactIfState(device_id, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
			FROM status_events
			WHERE target_firmware != ''
			GROUP BY hour, target_firmware, region`

func init() {
	Migrations = append(Migrations, Migration{
		Version: 5,
		Name:    "rollout rollup: distinct devices per firmware, region and hour",
		Statements: []string{
			`CREATE TABLE IF NOT EXISTS ` + TableRolloutDevicesHourly + ` (
				hour            DateTime('UTC'),
				target_firmware LowCardinality(String),
				region          LowCardinality(String),
				started         AggregateFunction(uniqExactIf, String, UInt8),
				partial         AggregateFunction(uniqExactIf, String, UInt8),
				failed          AggregateFunction(uniqExactIf, String, UInt8)
			) ENGINE = AggregatingMergeTree
			PARTITION BY toYYYYMM(hour)
			ORDER BY (target_firmware, region, hour)`,
			`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + TableRolloutDevicesHourly + `_mv TO ` + TableRolloutDevicesHourly + ` AS` + rolloutSelect,
			// Backfill what was stored before this migration. Running it
			// twice (a crash before the version is recorded) is harmless:
			// the states are sets.
			`INSERT INTO ` + TableRolloutDevicesHourly + rolloutSelect,
		},
	})
}
