-- name: moving_failure_rate
-- title: Failure rate per minute and its 5-minute moving rate, per firmware
-- Why: a dashboard line that shows a bad build as it spreads. Per target
-- firmware and minute: OTA events (any state past idle) and failure events;
-- the moving rate sums both over a frame of the current and 4 preceding
-- minutes that had events (ROWS BETWEEN 4 PRECEDING AND CURRENT ROW), so a
-- quiet minute does not divide by zero.
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_minute AS (
    SELECT
        target_firmware AS firmware,
        toStartOfMinute(ts) AS minute,
        countIf(state NOT IN ('idle', 'offline')) AS ota_events,
        countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failures
    FROM events
    WHERE target_firmware != ''
    GROUP BY firmware, minute
    HAVING ota_events > 0
)
SELECT
    firmware,
    minute,
    ota_events,
    failures,
    round(failures / ota_events, 4) AS failure_rate,
    round(sum(failures) OVER w / sum(ota_events) OVER w, 4) AS moving_rate_5m
FROM per_minute
WINDOW w AS (PARTITION BY firmware ORDER BY minute ROWS BETWEEN 4 PRECEDING AND CURRENT ROW)
ORDER BY firmware, minute
