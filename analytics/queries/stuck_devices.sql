-- name: stuck_devices
-- title: Devices stuck in an OTA phase longer than its timeout
-- Why: a device that went quiet mid-install needs a person (hawkBit has no
-- such timeout). A device is stuck when its latest state is an in-progress
-- phase (downloading, verifying, installing, rebooting, rolling_back) and
-- its latest status event is older than that phase's timeout, measured at
-- the latest event in the window: replaying history gives the same answer,
-- and on live data that is about now. The timeouts are the warehouse's
-- state_timeouts table (migration 13), the numbers the recoverer halts a
-- stuck device by; select from it to see them.
-- Unit: one row per stuck device; silent_s and timeout_s in seconds, to
-- the millisecond (a device 0.5 s past its deadline is stuck).
-- Denominator: none; a list.
-- Excludes: devices whose latest state is not an in-progress phase, and
-- events outside [since, until). Acknowledgements count as signs of life.
-- empty: no device's latest state is a phase it has been silent in longer than the phase's timeout (2 to 10 minutes, see state_timeouts), measured at the window's latest event; a run shorter than the timeouts has none
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
    SELECT state, timeout_ms
    FROM state_timeouts FINAL
    WHERE state IN ('downloading', 'verifying', 'installing', 'rebooting', 'rolling_back')
),
silence AS (
    SELECT
        l.region AS region,
        l.device_id AS device_id,
        l.firmware AS firmware,
        l.state AS state,
        l.last_seen AS last_seen,
        t.timeout_ms AS timeout_ms,
        dateDiff('millisecond', l.last_seen, (SELECT max(ts) FROM events)) AS silent_ms
    FROM latest AS l
    INNER JOIN timeouts AS t ON t.state = l.state
)
SELECT region, device_id, firmware, state, last_seen, silent_ms / 1000 AS silent_s, timeout_ms / 1000 AS timeout_s
FROM silence
WHERE silent_ms > timeout_ms
ORDER BY silent_ms DESC, region, device_id
