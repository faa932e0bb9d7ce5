-- name: time_to_recover
-- title: Time to recover by region: from first failure to updated or rolled back
-- Why: the number a rollout owner is judged on. For every device that
-- failed, the time from its first failure to the first `updated` or
-- `rolled_back` after it. Percentiles use the nearest-rank method on the
-- sorted durations (the value at rank ceil(p * n)), so they are values
-- that occurred; NULL where no device of the region recovered.
-- Unit: seconds, to the millisecond; one row per region. A failure is a
-- status event in download_failed, verify_failed, install_failed, partial
-- or boot_failed with ts in [since, until); recovery the first updated or
-- rolled_back event after it in the same window.
-- Denominator: recovered_share is recovered_devices over failed_devices
-- (devices with a failure in the window); percentiles are over recovered
-- devices only.
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- and redelivered copies (the aggregates are idempotent).
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_device AS (
    SELECT
        region,
        device_id,
        minIf(ts, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS first_failure,
        groupArrayIf(ts, state IN ('updated', 'rolled_back')) AS fixes
    FROM events
    GROUP BY region, device_id
    HAVING countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) > 0
),
recoveries AS (
    SELECT
        region,
        device_id,
        arrayFilter(t -> t > first_failure, fixes) AS after,
        length(after) > 0 AS recovered,
        if(recovered, dateDiff('millisecond', first_failure, arrayMin(after)) / 1000, 0) AS seconds
    FROM per_device
),
per_region AS (
    SELECT
        region,
        count() AS failed_devices,
        countIf(recovered) AS recovered_devices,
        arraySort(groupArrayIf(seconds, recovered)) AS s
    FROM recoveries
    GROUP BY region
)
SELECT
    region,
    failed_devices,
    recovered_devices,
    round(recovered_devices / failed_devices, 4) AS recovered_share,
    if(length(s) = 0, NULL, s[toUInt32(ceil(0.5 * length(s)))]) AS p50_s,
    if(length(s) = 0, NULL, s[toUInt32(ceil(0.9 * length(s)))]) AS p90_s,
    if(length(s) = 0, NULL, s[length(s)]) AS max_s
FROM per_region
ORDER BY region
