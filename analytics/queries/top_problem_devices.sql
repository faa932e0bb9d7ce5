-- name: top_problem_devices
-- title: Top problem devices per region (ROW_NUMBER)
-- Why: gives each region's team its own short list. Devices are ordered
-- within their region by failure events, then by how recently they failed;
-- ROW_NUMBER (not RANK) keeps exactly {top} per region even on ties, and
-- device_id breaks ties so the list is stable.
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
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
