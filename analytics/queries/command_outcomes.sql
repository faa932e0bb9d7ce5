-- name: command_outcomes
-- title: Command outcomes reported by devices
-- Why: a command is idempotent and measurable because the device reports
-- its result on its status topic with the command's ID; this counts those
-- results by command and outcome. `sentinel run` prints it after the
-- ranking.
-- Unit: status events carrying a command result (command_id set), with ts
-- in [since, until), one row per (action, outcome); a device that reports
-- one result twice (with two seqs) counts twice.
-- Denominator: none; counts.
-- Excludes: status events without a result, redelivered copies (FINAL).
-- Acknowledgements (defer and halt results, rejected and duplicate
-- outcomes) are results and count here.
SELECT action, outcome, count() AS results
FROM status_events FINAL
WHERE command_id != ''
  AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
  AND ({firmware:String} = '' OR target_firmware = {firmware:String})
  AND ({region:String} = '' OR region = {region:String})
GROUP BY action, outcome
ORDER BY action, outcome
