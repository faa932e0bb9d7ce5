-- name: fleet_final_states
-- title: Where the fleet ended up (latest state per device)
-- Why: the end of a rollout in one table: each device's latest OTA state
-- (by sequence number, so a late redelivery cannot rewind it) in the
-- window, counted by state. `sentinel run` prints it after the ranking.
-- Unit: devices, one row per state; each device with a status event in
-- [since, until) counts once, at its latest state there.
-- Denominator: none; counts (they sum to the devices seen).
-- Excludes: redelivered copies (FINAL). Acknowledgements count: they
-- report the state the device is in.
SELECT state, count() AS devices
FROM (
    SELECT device_id, argMax(state, seq) AS state
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
    GROUP BY device_id
)
GROUP BY state
ORDER BY devices DESC, state
