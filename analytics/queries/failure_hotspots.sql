-- name: failure_hotspots
-- title: Hours where failures bunch, per region
-- Why: failures that cluster in time point at something outside the device
-- (a backend, a network, a wave of the rollout). Per region and hour:
-- failure events, their share of the region's failures, and how many times
-- the region's average hour that is (window aggregates over the region).
-- The {top} worst hours per region, ties sharing a rank.
-- Unit: one row per (region, hour) with at least one failure event
-- (download_failed, verify_failed, install_failed, partial, boot_failed),
-- hour the UTC hour of ts, ts in [since, until).
-- Denominators: share_of_region divides by the region's failure events in
-- the window; vs_average_hour by the mean failure events of the region's
-- hours that had any status event in the window (hours with none are not
-- in the mean).
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- and redelivered copies (FINAL).
-- empty: the window holds no failure event (download_failed, verify_failed, install_failed, partial, boot_failed) of the firmware and region asked for
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_hour AS (
    SELECT region, toStartOfHour(ts) AS hour, countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failures
    FROM events
    GROUP BY region, hour
),
ranked AS (
    SELECT
        *,
        RANK() OVER (PARTITION BY region ORDER BY failures DESC) AS rank_in_region,
        sum(failures) OVER (PARTITION BY region) AS region_failures,
        avg(failures) OVER (PARTITION BY region) AS region_hourly_avg
    FROM per_hour
)
SELECT
    region,
    rank_in_region,
    hour,
    failures,
    round(failures / region_failures, 4) AS share_of_region,
    round(failures / region_hourly_avg, 2) AS vs_average_hour
FROM ranked
WHERE failures > 0 AND rank_in_region <= {top:UInt32}
ORDER BY region, rank_in_region, hour
