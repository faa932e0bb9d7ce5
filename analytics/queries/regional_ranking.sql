-- name: regional_ranking
-- title: Regions ranked by partial-failure rate, per target firmware
-- Why: a rollout stalls where devices end half-updated. For every target
-- firmware, rank the regions by the share of updating devices that reported
-- `partial` at least once, so the worst region of each build comes first.
-- A device counts as updating once it reports any state past `idle` for that
-- target. Ties share a rank (RANK, not ROW_NUMBER). A redelivered event
-- never counts twice: per-device flags are max() over events, so the query
-- needs no FINAL (queries that count events read with FINAL).
-- Parameters (all queries): since, until (DateTime64(3, 'UTC')), firmware,
-- region ('' = all), top.
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
),
attempts AS (
    SELECT
        target_firmware AS firmware,
        region,
        device_id,
        max(state = 'partial') AS went_partial,
        max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
    FROM events
    WHERE target_firmware != '' AND state NOT IN ('idle', 'offline')
    GROUP BY firmware, region, device_id
),
rates AS (
    SELECT
        firmware,
        region,
        count() AS devices,
        sum(went_partial) AS partial,
        sum(failed) AS failed_any,
        round(sum(went_partial) / count(), 4) AS partial_rate
    FROM attempts
    GROUP BY firmware, region
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
