-- name: dashboard rollups and latest device state
--
-- Dashboard views: per-minute rollups filled at insert time by materialized
-- views (read them with the -Merge combinators, e.g. countMerge(readings)),
-- and the latest state of every device.

-- Rollups count what was inserted; a redelivered message is counted again
-- in readings/events, but never in the uniq columns, which dashboards should
-- prefer for device counts (migration 10 adds exact, deduplicated counts).
CREATE TABLE IF NOT EXISTS telemetry_per_minute (
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
			ORDER BY (region, firmware, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_per_minute_mv TO telemetry_per_minute AS
			SELECT
				toStartOfMinute(ts) AS minute, region, firmware,
				countState() AS readings, uniqState(device_id) AS devices,
				avgState(battery_pct) AS battery_avg, minState(battery_pct) AS battery_min, avgState(rssi_dbm) AS rssi_avg
			FROM telemetry
			GROUP BY minute, region, firmware;

CREATE TABLE IF NOT EXISTS status_per_minute (
				minute          DateTime('UTC'),
				region          LowCardinality(String),
				target_firmware LowCardinality(String),
				state           LowCardinality(String),
				events          AggregateFunction(count),
				devices         AggregateFunction(uniq, String)
			) ENGINE = AggregatingMergeTree
			PARTITION BY toDate(minute)
			ORDER BY (region, target_firmware, state, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS status_per_minute_mv TO status_per_minute AS
			SELECT
				toStartOfMinute(ts) AS minute, region, target_firmware, state,
				countState() AS events, uniqState(device_id) AS devices
			FROM status_events
			GROUP BY minute, region, target_firmware, state;

-- Exact, deduplicated, computed on read: the state a dashboard's device
-- table shows.
CREATE VIEW IF NOT EXISTS device_latest AS
			SELECT
				device_id,
				any(region) AS region,
				argMax(state, seq) AS state,
				argMax(firmware, seq) AS firmware,
				argMax(target_firmware, seq) AS target_firmware,
				max(ts) AS last_seen,
				max(seq) AS last_seq
			FROM status_events FINAL
			GROUP BY device_id;
