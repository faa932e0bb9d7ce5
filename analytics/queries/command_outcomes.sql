-- name: command_outcomes
-- title: Command outcomes reported by devices
-- Why: a command is idempotent and measurable because the device reports
-- its result on its status topic with the command's ID; this counts those
-- results by command and outcome. `sentinel run` prints it after the
-- ranking.
SELECT action, outcome, count() AS results
FROM status_events FINAL
WHERE command_id != ''
  AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
  AND ({firmware:String} = '' OR target_firmware = {firmware:String})
  AND ({region:String} = '' OR region = {region:String})
GROUP BY action, outcome
ORDER BY action, outcome
