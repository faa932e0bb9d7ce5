-- name: regional_ranking
-- title: Regions ranked by partial-failure rate, per target firmware
-- Why: a rollout stalls where devices end half-updated. For every target
-- firmware, rank the regions by the share of updating devices that reported
-- `partial` at least once, so the worst region of each build comes first.
-- A device counts as updating once it reports any state past `idle` for that
-- target. Ties share a rank (RANK, not ROW_NUMBER).
-- How: the whole hours of the window come from rollout_devices_hourly
-- (exact distinct-device sets per firmware, region and hour, kept by a
-- materialized view); the minutes at either edge come from status_events.
-- Both are uniqExact states merged together, so the answer is exact, a
-- redelivered event counts once, and a fleet-wide ranking reads a few
-- thousand rollup rows instead of every event.
-- Unit: one row per (target firmware, region); devices counts devices
-- with a status event past idle (not offline) for that target in [since,
-- until), partial those that reported partial, failed_any those in any
-- failed state (download_failed, verify_failed, install_failed, partial,
-- boot_failed) at least once.
-- Denominator: partial_rate is partial over devices.
-- Excludes: devices that never left idle in the window, events without a
-- target firmware. Acknowledgements count: a device re-reporting partial
-- is partial, and counts once however often it reports.
-- Parameters (all queries): since, until (DateTime64(3, 'UTC')), firmware,
-- region ('' = all), top.
WITH
    toDateTime64({since:DateTime64(3, 'UTC')}, 3, 'UTC') AS since,
    toDateTime64({until:DateTime64(3, 'UTC')}, 3, 'UTC') AS until,
    -- Whole hours inside [since, until): [first_hour, last_hour).
    if(toStartOfHour(since) = since, toStartOfHour(since), toStartOfHour(since) + INTERVAL 1 HOUR) AS first_hour,
    toStartOfHour(until) AS last_hour,
states AS (
    SELECT
        target_firmware AS firmware,
        region,
        uniqExactIfMergeState(started) AS started,
        uniqExactIfMergeState(partial) AS partial,
        uniqExactIfMergeState(failed) AS failed
    FROM rollout_devices_hourly
    WHERE hour >= first_hour AND hour < last_hour
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
    GROUP BY firmware, region
    UNION ALL
    -- The edges. When the window holds no whole hour the two ranges
    -- overlap; sets make that harmless.
    SELECT
        target_firmware AS firmware,
        region,
        uniqExactIfState(device_id, state NOT IN ('idle', 'offline')) AS started,
        uniqExactIfState(device_id, state = 'partial') AS partial,
        uniqExactIfState(device_id, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
    FROM status_events
    WHERE ((ts >= since AND ts < least(first_hour, until)) OR (ts >= greatest(last_hour, since) AND ts < until))
      AND target_firmware != ''
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
    GROUP BY firmware, region
),
rates AS (
    SELECT
        firmware,
        region,
        uniqExactIfMerge(started) AS devices,
        uniqExactIfMerge(partial) AS partial,
        uniqExactIfMerge(failed) AS failed_any,
        round(partial / devices, 4) AS partial_rate
    FROM states
    GROUP BY firmware, region
    HAVING devices > 0
)
SELECT
    firmware,
    RANK() OVER (PARTITION BY firmware ORDER BY partial_rate DESC) AS rank,
    region,
    devices,
    partial,
    failed_any,
    partial_rate
FROM rates
ORDER BY firmware, rank, region
