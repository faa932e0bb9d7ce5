-- name: rollout rollup: distinct devices per firmware, region and hour
--
-- The rollout rollup (warehouse.TableRolloutDevicesHourly): per target
-- firmware, region and hour, the set of devices that started an update, that
-- reported partial, and that failed in any way, kept as exact distinct-count
-- states (uniqExact). Sets are idempotent, so redelivered events change
-- nothing, and they merge exactly across hours. The materialized view and the
-- backfill run the same aggregation.

CREATE TABLE IF NOT EXISTS rollout_devices_hourly (
				hour            DateTime('UTC'),
				target_firmware LowCardinality(String),
				region          LowCardinality(String),
				started         AggregateFunction(uniqExactIf, String, UInt8),
				partial         AggregateFunction(uniqExactIf, String, UInt8),
				failed          AggregateFunction(uniqExactIf, String, UInt8)
			) ENGINE = AggregatingMergeTree
			PARTITION BY toYYYYMM(hour)
			ORDER BY (target_firmware, region, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollout_devices_hourly_mv TO rollout_devices_hourly AS
			SELECT
				toStartOfHour(ts) AS hour,
				target_firmware,
				region,
				uniqExactIfState(device_id, state NOT IN ('idle', 'offline')) AS started,
				uniqExactIfState(device_id, state = 'partial') AS partial,
				uniqExactIfState(device_id, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
			FROM status_events
			WHERE target_firmware != ''
			GROUP BY hour, target_firmware, region;

-- Backfill what was stored before this migration. Running it twice (a
-- crash before the version is recorded) is harmless: the states are sets.
INSERT INTO rollout_devices_hourly
			SELECT
				toStartOfHour(ts) AS hour,
				target_firmware,
				region,
				uniqExactIfState(device_id, state NOT IN ('idle', 'offline')) AS started,
				uniqExactIfState(device_id, state = 'partial') AS partial,
				uniqExactIfState(device_id, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
			FROM status_events
			WHERE target_firmware != ''
			GROUP BY hour, target_firmware, region;
