-- name: anomalous_regions
-- title: Regions whose failure rate stands out from the fleet (z-score)
-- Why: "ap-south fails more" only matters against the spread of all
-- regions. Per target firmware, each region's share of updating devices
-- that failed at least once is compared with the mean and population
-- standard deviation over the firmware's regions (window aggregates over
-- the whole partition). anomalous marks z >= 1.5: a region far above its
-- peers, not just the worst one.
-- Unit: one row per (target firmware, region); devices counts devices with
-- a status event past idle (not offline) for that target in [since,
-- until), failed those of them in a failed state (download_failed,
-- verify_failed, install_failed, partial, boot_failed) at least once.
-- Denominators: failure_rate is failed over devices; fleet_rate the mean
-- of the firmware's regions' rates (each region weighs the same), and
-- z_score divides by their population standard deviation (0 when all
-- regions have one rate).
-- Excludes: devices that never left idle in the window, events without a
-- target firmware. Acknowledgements count: a device re-reporting a failed
-- state is in it, and a device counts once however often it reports.
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
),
rates AS (
    SELECT firmware, region, count() AS devices, sum(failed) AS failed_devices, sum(failed) / count() AS rate
    FROM per_device
    GROUP BY firmware, region
),
scored AS (
    SELECT
        *,
        avg(rate) OVER (PARTITION BY firmware) AS fleet_mean,
        stddevPop(rate) OVER (PARTITION BY firmware) AS fleet_stddev
    FROM rates
)
SELECT
    firmware,
    region,
    devices,
    failed_devices AS failed,
    round(rate, 4) AS failure_rate,
    round(fleet_mean, 4) AS fleet_rate,
    round(if(fleet_stddev = 0, 0, (rate - fleet_mean) / fleet_stddev), 2) AS z_score,
    if(fleet_stddev = 0, 0, (rate - fleet_mean) / fleet_stddev) >= 1.5 AS anomalous
FROM scored
ORDER BY firmware, z_score DESC, region
