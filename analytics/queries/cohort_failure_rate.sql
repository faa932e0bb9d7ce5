-- name: cohort_failure_rate
-- title: Cohort breaker: each (firmware, region) cohort's counts and the recoverer's verdict on it
-- Why: the recoverer stops retrying a cohort whose rollout is failing (the
-- cohort breaker). Its rule, breaker v2 by default (cohortstat: an
-- anytime-valid test of the cohort against the previous firmware in the
-- region, alpha split over the active cohorts, release health, silence
-- past a state's deadline; or the Wilson or AWS-style rule, by the
-- recoverer's --breaker-rule, --breaker-alpha, --breaker-delta,
-- --breaker-min-sample and --breaker-threshold), is judged in the
-- recoverer at every look, latched, and logged in breaker_verdicts
-- (migration 14) with the rule, the deciding signal and its numbers. This
-- query shows that verdict, so it marks as tripped exactly the cohorts the
-- recoverer tripped, whatever rule and parameters it ran with (they are
-- in the row: rule, and alpha in breaker_verdicts). A cohort is in the
-- list when it has status events in [since, until); its verdict is the
-- latest one logged before until (verdicts are logged when they change,
-- and a halt holds until the cohort leaves the breaker's lookback).
-- Unit: one row per (target firmware, region); devices counts devices with
-- a status event past idle (not offline) in the window, settled_devices
-- those whose update ended (failed, updated, rolled back, bricked),
-- failed_devices those in a failed state (download_failed, verify_failed,
-- install_failed, partial, boot_failed) at least once (the view
-- cohort_failure_rate, migrations 4, 7 and 9). estimate, bound and
-- bound_limit are the deciding signal's numbers in the verdict (a share of
-- devices, or a rate per device-hour for crash_rate and drain), NULL
-- without a verdict.
-- Denominator: settled_failure_rate is failed over settled devices. The
-- breaker's own counts (cohort_breaker_counts) also count a device silent
-- past its state's deadline (state_timeouts) as settled and failed.
-- Excludes: devices that never left idle in the window, events without a
-- target firmware. Acknowledgements count: a device re-reporting a failed
-- state is failed, and counts once however often it reports. verdict
-- continue means the breaker logged no verdict for the cohort.
WITH verdicts AS (
    SELECT
        firmware,
        region,
        argMax(verdict, ts) AS verdict,
        argMax(rule, ts) AS rule,
        argMax(signal, ts) AS signal,
        argMax(estimate, ts) AS estimate,
        argMax(bound, ts) AS bound,
        argMax(bound_limit, ts) AS bound_limit,
        max(ts) AS verdict_at
    FROM breaker_verdicts
    WHERE ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
    GROUP BY firmware, region
)
SELECT
    c.firmware AS firmware,
    c.region AS region,
    c.devices AS devices,
    c.settled_devices AS settled_devices,
    c.failed_devices AS failed_devices,
    c.settled_failure_rate AS settled_failure_rate,
    v.rule AS rule,
    if(v.verdict = '', 'continue', v.verdict) AS verdict,
    v.signal AS signal,
    if(v.verdict = '', NULL, round(v.estimate, 4)) AS estimate,
    if(v.verdict = '', NULL, round(v.bound, 4)) AS bound,
    if(v.verdict = '', NULL, round(v.bound_limit, 4)) AS bound_limit,
    if(v.verdict = '', NULL, v.verdict_at) AS verdict_at,
    v.verdict = 'halt' AS tripped
FROM cohort_failure_rate(
    since = {since:DateTime64(3, 'UTC')}, until = {until:DateTime64(3, 'UTC')},
    firmware = {firmware:String}, region = {region:String},
    min_sample = {min_sample:UInt32}, threshold = {threshold:Float64}) AS c
LEFT JOIN verdicts AS v ON v.firmware = c.firmware AND v.region = c.region
ORDER BY tripped DESC, settled_failure_rate DESC, firmware, region
SETTINGS join_use_nulls = 0
