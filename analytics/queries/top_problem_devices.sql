-- name: top_problem_devices
-- title: Top problem devices per region (ROW_NUMBER)
-- Why: gives each region's team its own short list. Devices are ordered
-- within their region by failure events, then by how recently they failed;
-- ROW_NUMBER (not RANK) keeps exactly {top} per region even on ties, and
-- device_id breaks ties so the list is stable.
-- Unit: one row per device, at most {top} per region. failure_events counts
-- the device's status events in a failed state (download_failed,
-- verify_failed, install_failed, partial, boot_failed) with ts in [since,
-- until); last_failure is the latest one's ts; current_state the device's
-- latest state in the window (by seq).
-- Denominator: none; counts, not rates.
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- redelivered copies (FINAL), and devices without a failure event.
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_device AS (
    SELECT
        region,
        device_id,
        countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failure_events,
        maxIf(ts, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS last_failure,
        argMax(state, seq) AS current_state
    FROM events
    GROUP BY region, device_id
    HAVING failure_events > 0
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY region ORDER BY failure_events DESC, last_failure DESC, device_id) AS rank_in_region
    FROM per_device
)
SELECT region, rank_in_region, device_id, failure_events, last_failure, current_state
FROM ranked
WHERE rank_in_region <= {top:UInt32}
ORDER BY region, rank_in_region
