-- name: recovery_decisions
-- title: Recovery decisions
-- Why: what the controller did, and why, over the fleet: every decision
-- (including "do nothing because ...") by action and reason, with the
-- devices each touched. `sentinel run` prints it after the ranking.
-- Unit: one row per (action, reason); decisions counts the recoverer's
-- decisions with ts in [since, until), devices the distinct devices among
-- them.
-- Denominator: none; counts.
-- Excludes: redelivered copies (FINAL). firmware keeps devices that
-- reported that target firmware at any time.
SELECT action, reason, count() AS decisions, uniqExact(device_id) AS devices
FROM decisions FINAL
WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
  AND ({region:String} = '' OR region = {region:String})
  AND ({firmware:String} = '' OR device_id IN
        (SELECT device_id FROM status_events FINAL WHERE target_firmware = {firmware:String}))
GROUP BY action, reason
ORDER BY decisions DESC, action, reason
