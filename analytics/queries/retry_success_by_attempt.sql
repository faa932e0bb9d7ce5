-- name: retry_success_by_attempt
-- title: Retry success by attempt number
-- Why: says whether a third retry is worth sending. Each retry the
-- recoverer decided (decisions, attempt 0 is the first) is matched to the
-- result the device reported with the same command ID (the latest one, by
-- seq). no_result counts retries still waiting for an answer; failed counts
-- every other outcome. cumulative_succeeded is a running sum over attempts.
WITH retries AS (
    SELECT command_id, attempt + 1 AS attempt_no
    FROM (
    SELECT *
    FROM decisions FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({region:String} = '' OR region = {region:String})
      AND ({firmware:String} = '' OR device_id IN
            (SELECT device_id FROM status_events FINAL WHERE target_firmware = {firmware:String}))
    )
    WHERE action = 'retry' AND command_id != ''
),
results AS (
    SELECT command_id, argMax(outcome, seq) AS outcome
    FROM status_events FINAL
    WHERE command_id != ''
    GROUP BY command_id
),
per_attempt AS (
    SELECT
        r.attempt_no AS attempt_no,
        count() AS retries,
        countIf(res.outcome = 'ok') AS succeeded,
        countIf(res.outcome NOT IN ('ok', '')) AS failed,
        countIf(res.outcome = '') AS no_result
    FROM retries AS r
    LEFT JOIN results AS res ON res.command_id = r.command_id
    GROUP BY attempt_no
)
SELECT
    attempt_no,
    retries,
    succeeded,
    failed,
    no_result,
    round(succeeded / retries, 4) AS success_rate,
    sum(succeeded) OVER (ORDER BY attempt_no ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_succeeded
FROM per_attempt
ORDER BY attempt_no
