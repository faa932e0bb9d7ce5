-- name: per-minute rollups count a redelivered message once
--
-- After a consumer stall the broker redelivers everything in flight and
-- the ingestor inserts it again. telemetry and status_events absorb the
-- repeats (ReplacingMergeTree on (device_id, seq), exact under FINAL), but
-- the per-minute rollups of migration 2 are filled from every inserted
-- block, so their countState() columns count each repeat again (5,482
-- rows in the stall issue 19 describes). This migration adds, beside
-- them, exact sets of (device_id, seq):
--
--   - telemetry_per_minute.unique_readings: uniqExactMerge(unique_readings)
--     is the number of distinct readings in the minute;
--   - status_per_minute.unique_events: likewise for status events.
--
-- Dashboards show those. readings and events stay what they were, rows
-- inserted, redeliveries included: the ingest load, not the fleet's
-- activity. devices was already a distinct count. battery_avg and
-- rssi_avg stay averages over inserted rows: an average cannot be made
-- idempotent from states without keeping every reading's value by its
-- key, so a redelivered reading weighs twice in its minute (the bias is
-- bounded by the redelivered share of that minute, and the repeat is the
-- same value); battery_min is unaffected. Exact averages come from
-- telemetry FINAL.
--
-- Cost: an exact set keeps a 128-bit hash of every distinct (device_id,
-- seq) in its minute, 16 bytes a reading on disk, so these columns grow
-- like the key of the raw table. That is the price of an exact count that
-- redelivery cannot move; an approximate uniq state would be smaller but
-- would not be exact.
--
-- ALTER TABLE ... MODIFY QUERY swaps a materialized view's query without
-- stopping inserts. ClickHouse's documentation required the setting
-- allow_experimental_alter_materialized_view_structure for it until
-- January 2024 (ClickHouse pull request 59281 dropped the sentence); the
-- embedded engine (26.7) and servers of 24.1 or later run it as is, older
-- servers need the setting on for the migrating user.
--
-- Order: the column, then the view's new query (an atomic swap), then a
-- backfill of the new column from the raw table, so every row stored
-- before or during the migration is counted. The backfill writes only the
-- new column (the others read as empty states, which merge to nothing),
-- and sets make running it twice harmless. The backfill reads the raw
-- tables once and holds their distinct keys in memory (about 32 bytes a
-- reading): on a server with months of telemetry, run it per partition by
-- hand (WHERE toDate(ts) = ...) before starting the new version.

ALTER TABLE telemetry_per_minute ADD COLUMN IF NOT EXISTS unique_readings AggregateFunction(uniqExact, String, UInt64) AFTER readings;

ALTER TABLE telemetry_per_minute_mv MODIFY QUERY
	SELECT
		toStartOfMinute(ts) AS minute, region, firmware,
		countState() AS readings, uniqExactState(device_id, seq) AS unique_readings, uniqState(device_id) AS devices,
		avgState(battery_pct) AS battery_avg, minState(battery_pct) AS battery_min, avgState(rssi_dbm) AS rssi_avg
	FROM telemetry
	GROUP BY minute, region, firmware;

INSERT INTO telemetry_per_minute (minute, region, firmware, unique_readings)
	SELECT toStartOfMinute(ts) AS minute, region, firmware, uniqExactState(device_id, seq)
	FROM telemetry
	GROUP BY minute, region, firmware;

ALTER TABLE status_per_minute ADD COLUMN IF NOT EXISTS unique_events AggregateFunction(uniqExact, String, UInt64) AFTER events;

ALTER TABLE status_per_minute_mv MODIFY QUERY
	SELECT
		toStartOfMinute(ts) AS minute, region, target_firmware, state,
		countState() AS events, uniqExactState(device_id, seq) AS unique_events, uniqState(device_id) AS devices
	FROM status_events
	GROUP BY minute, region, target_firmware, state;

INSERT INTO status_per_minute (minute, region, target_firmware, state, unique_events)
	SELECT toStartOfMinute(ts) AS minute, region, target_firmware, state, uniqExactState(device_id, seq)
	FROM status_events
	GROUP BY minute, region, target_firmware, state;
