-- name: stuck_devices
-- title: Devices stuck in an OTA phase longer than its timeout
-- Why: a device that went quiet mid-install needs a person (hawkBit has no
-- such timeout). A device is stuck when its latest state is an in-progress
-- phase and its latest event is older than that phase's timeout (downloading
-- 10 min, verifying 2 min, installing 10 min, rebooting 5 min, rolling_back
-- 10 min), measured at the latest event in the window: replaying history
-- gives the same answer, and on live data that is about now.
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
),
latest AS (
    SELECT
        region,
        device_id,
        argMax(target_firmware, seq) AS firmware,
        argMax(state, seq) AS state,
        max(ts) AS last_seen
    FROM events
    GROUP BY region, device_id
),
timeouts AS (
    SELECT
        *,
        transform(state, ['downloading', 'verifying', 'installing', 'rebooting', 'rolling_back'], [600, 120, 600, 300, 600], 0) AS timeout_s,
        dateDiff('second', last_seen, (SELECT max(ts) FROM events)) AS silent_s
    FROM latest
)
SELECT region, device_id, firmware, state, last_seen, silent_s, timeout_s
FROM timeouts
WHERE timeout_s > 0 AND silent_s > timeout_s
ORDER BY silent_s DESC, region, device_id
