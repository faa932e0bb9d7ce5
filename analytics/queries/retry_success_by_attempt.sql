-- name: retry_success_by_attempt
-- title: Retry success by kind and attempt number
-- Why: says whether a third retry is worth sending. A download retry (sent
-- to a device in download_failed or verify_failed: it downloads the image
-- again) and a flash retry (from partial, install_failed or boot_failed:
-- it writes the image again) fail for different reasons and have budgets
-- of their own in the recoverer (3 each), so they are counted apart:
-- attempt_no is the retry's number among the device's retries of the same
-- kind in the same failure episode (an episode starts at the recoverer's
-- first command for a failure, attempt 0 in decisions), numbered over the
-- device's whole history so a window does not renumber them. Each retry is
-- matched to the result the device reported with the same command ID (the
-- latest one, by seq).
-- Unit: one row per (kind, attempt_no); counts of retry commands the
-- recoverer decided with ts in [since, until); cumulative_succeeded is a
-- running sum over attempt numbers within the kind.
-- Denominator: success_rate is succeeded over retries, every retry of that
-- kind and number sent in the window, including those still without a
-- result (no_result). failed counts outcome failed; refused counts
-- rejected and duplicate (the device did not run it this time).
-- Excludes: decisions that sent no retry command (defer, halt, none,
-- rollback), and redelivered copies (FINAL).
WITH numbered AS (
    SELECT
        device_id,
        ts,
        seq,
        action,
        command_id,
        if(state IN ('download_failed', 'verify_failed'), 'download', 'flash') AS kind,
        sum(action IN ('retry', 'rollback') AND attempt = 0)
            OVER (PARTITION BY device_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS episode
    FROM decisions FINAL
    WHERE ({region:String} = '' OR region = {region:String})
      AND ({firmware:String} = '' OR device_id IN
            (SELECT device_id FROM status_events FINAL WHERE target_firmware = {firmware:String}))
),
retries AS (
    SELECT
        command_id,
        kind,
        ts,
        ROW_NUMBER() OVER (PARTITION BY device_id, episode, kind ORDER BY seq) AS attempt_no
    FROM numbered
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
        r.kind AS kind,
        r.attempt_no AS attempt_no,
        count() AS retries,
        countIf(res.outcome = 'ok') AS succeeded,
        countIf(res.outcome = 'failed') AS failed,
        countIf(res.outcome IN ('rejected', 'duplicate')) AS refused,
        countIf(res.outcome = '') AS no_result
    FROM retries AS r
    LEFT JOIN results AS res ON res.command_id = r.command_id
    WHERE r.ts >= {since:DateTime64(3, 'UTC')} AND r.ts < {until:DateTime64(3, 'UTC')}
    GROUP BY kind, attempt_no
)
SELECT
    kind,
    attempt_no,
    retries,
    succeeded,
    failed,
    refused,
    no_result,
    round(succeeded / retries, 4) AS success_rate,
    sum(succeeded) OVER (PARTITION BY kind ORDER BY attempt_no ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_succeeded
FROM per_attempt
ORDER BY kind, attempt_no
