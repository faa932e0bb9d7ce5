-- name: cohort_failure_rate
-- title: Cohort breaker input: failure rate per (firmware, region) in the window
-- Why: the recoverer stops retrying a cohort whose rollout is failing (the
-- cohort breaker); this is the one definition of that input. Over the
-- window [since, until), per target firmware and region: devices that
-- started the update, devices that failed at least once, and the rate.
-- enough_sample needs {min_sample} devices; tripped means enough_sample and
-- rate >= {threshold}. Worst cohorts first.
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
),
per_device AS (
    SELECT target_firmware AS firmware, region, device_id, max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
    FROM events
    WHERE target_firmware != '' AND state NOT IN ('idle', 'offline')
    GROUP BY firmware, region, device_id
)
SELECT
    firmware,
    region,
    count() AS devices,
    sum(failed) AS failed_devices,
    round(failed_devices / devices, 4) AS failure_rate,
    devices >= {min_sample:UInt32} AS enough_sample,
    enough_sample AND failed_devices / devices >= {threshold:Float64} AS tripped
FROM per_device
GROUP BY firmware, region
ORDER BY tripped DESC, failure_rate DESC, firmware, region
