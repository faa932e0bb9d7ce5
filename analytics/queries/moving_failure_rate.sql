-- name: moving_failure_rate
-- title: Failure rate per minute and its 5-minute moving rate, per firmware
-- Why: a dashboard line that shows a bad build as it spreads. Per target
-- firmware and minute: OTA events and failure events; the moving rate sums
-- both over five minutes of time, the current minute and the 4 before it,
-- whether or not those had events (RANGE BETWEEN 4 PRECEDING AND CURRENT
-- ROW over the minute number), so a quiet stretch never widens the window.
-- Only minutes with OTA events are listed, so no rate divides by zero.
-- Unit: one row per (target firmware, UTC minute of ts) in [since, until);
-- ota_events counts status events in any state but idle and offline,
-- failures those in download_failed, verify_failed, install_failed,
-- partial or boot_failed.
-- Denominators: failure_rate is failures over ota_events of the minute;
-- moving_rate_5m is the failures of the five minutes over their OTA events.
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run: no OTA event, and no failure), events without a
-- target firmware, and redelivered copies (FINAL).
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
WINDOW w AS (PARTITION BY firmware ORDER BY toRelativeMinuteNum(minute) RANGE BETWEEN 4 PRECEDING AND CURRENT ROW)
ORDER BY firmware, minute
