-- Sentinel analysis queries: the whole library in one file.
--
-- Generated from analytics/queries/*.sql (edit those, then run
-- `SENTINEL_UPDATE_GOLDEN=1 go test ./analytics`); each query is tested on the
-- embedded ClickHouse engine against an independent computation. The
-- warehouse's migrations must have run (warehouse/migrations): queries read
-- its views and tables (cohort_failure_rate, breaker_verdicts,
-- rollout_devices_hourly, state_timeouts, status_events.acknowledgement).
--
-- Every query takes the same parameters; pass them to clickhouse-client:
--
--   clickhouse-client --multiquery \
--     --param_since='1970-01-01 00:00:00' --param_until='2200-01-01 00:00:00' \
--     --param_firmware='' --param_region='' \
--     --param_top=5 --param_min_sample=20 --param_threshold=0.5 \
--     < analysis_queries.sql
--
-- or, in an interactive session, SET param_since = '2026-11-27 00:00:00'; etc.
-- since/until bound event time [since, until); firmware and region ''
-- mean all; top bounds per-group lists; min_sample and threshold are the
-- parameters of the view cohort_failure_rate (migration 9's Wilson rule,
-- the recoverer's --breaker-rule wilson defaults above). A redelivered MQTT
-- message never counts twice: a query reads a table with FINAL, or only
-- through aggregates a repeated row cannot change (max, min, argMax by
-- seq, distinct devices), and each says which where it reads.

-- ==========================================================================

-- name: anomalous_regions
-- title: Regions whose failure rate stands out from the fleet (z-score)
-- Why: "ap-south fails more" only matters against the spread of all
-- regions. Per target firmware, each region's share of updating devices
-- that failed at least once is compared with the mean and population
-- standard deviation over the firmware's regions (window aggregates over
-- the whole partition). anomalous marks z >= 1.5: a region far above its
-- peers, not just the worst one.
-- Unit: one row per (target firmware, region); devices counts devices with
-- a status event past idle (not offline) for that target in [since,
-- until), failed those of them in a failed state (download_failed,
-- verify_failed, install_failed, partial, boot_failed) at least once.
-- Denominators: failure_rate is failed over devices; fleet_rate the mean
-- of the firmware's regions' rates (each region weighs the same), and
-- z_score divides by their population standard deviation (0 when all
-- regions have one rate).
-- Excludes: devices that never left idle in the window, events without a
-- target firmware. Acknowledgements count: a device re-reporting a failed
-- state is in it, and a device counts once however often it reports.
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
),
per_device AS (
    SELECT target_firmware AS firmware, region, device_id, max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
    FROM events
    WHERE target_firmware != '' AND state NOT IN ('idle', 'offline')
    GROUP BY firmware, region, device_id
),
rates AS (
    SELECT firmware, region, count() AS devices, sum(failed) AS failed_devices, sum(failed) / count() AS rate
    FROM per_device
    GROUP BY firmware, region
),
scored AS (
    SELECT
        *,
        avg(rate) OVER (PARTITION BY firmware) AS fleet_mean,
        stddevPop(rate) OVER (PARTITION BY firmware) AS fleet_stddev
    FROM rates
)
SELECT
    firmware,
    region,
    devices,
    failed_devices AS failed,
    round(rate, 4) AS failure_rate,
    round(fleet_mean, 4) AS fleet_rate,
    round(if(fleet_stddev = 0, 0, (rate - fleet_mean) / fleet_stddev), 2) AS z_score,
    if(fleet_stddev = 0, 0, (rate - fleet_mean) / fleet_stddev) >= 1.5 AS anomalous
FROM scored
ORDER BY firmware, z_score DESC, region;

-- ==========================================================================

-- name: battery_deferrals
-- title: Battery-guard deferrals by region, and how long devices waited
-- Why: the battery guard keeps devices safe by waiting; this shows what
-- the waiting costs. A device is deferred from its first decision to defer
-- for battery (battery_low, battery_below_rollback_floor) until the
-- recoverer's next retry or rollback for it; still_waiting counts devices
-- with no such command yet. Wait percentiles use nearest rank, as in
-- time_to_recover.
-- Unit: one row per region; deferred_devices and still_waiting count
-- devices, deferrals counts decisions; waits in seconds, to the
-- millisecond, of decisions with ts in [since, until).
-- Denominator: percentiles are over resumed devices only.
-- Excludes: deferrals for other reasons (signal, backoff), devices never
-- deferred for battery, and redelivered copies (FINAL). firmware keeps
-- devices that reported that target firmware at any time.
WITH d AS (
    SELECT *
    FROM decisions FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({region:String} = '' OR region = {region:String})
      AND ({firmware:String} = '' OR device_id IN
            (SELECT device_id FROM status_events FINAL WHERE target_firmware = {firmware:String}))
),
per_device AS (
    SELECT
        region,
        device_id,
        countIf(action = 'defer' AND reason IN ('battery_low', 'battery_below_rollback_floor')) AS deferrals,
        minIf(ts, action = 'defer' AND reason IN ('battery_low', 'battery_below_rollback_floor')) AS first_defer,
        groupArrayIf(ts, action IN ('retry', 'rollback')) AS acted
    FROM d
    GROUP BY region, device_id
    HAVING deferrals > 0
),
waits AS (
    SELECT
        region,
        deferrals,
        arrayFilter(t -> t > first_defer, acted) AS after,
        length(after) > 0 AS resumed,
        if(resumed, dateDiff('millisecond', first_defer, arrayMin(after)) / 1000, 0) AS wait_s
    FROM per_device
),
per_region AS (
    SELECT
        region,
        count() AS deferred_devices,
        sum(deferrals) AS total_deferrals,
        countIf(resumed) AS resumed_devices,
        countIf(NOT resumed) AS still_waiting,
        arraySort(groupArrayIf(wait_s, resumed)) AS w
    FROM waits
    GROUP BY region
)
SELECT
    region,
    deferred_devices,
    total_deferrals AS deferrals,
    resumed_devices AS resumed,
    still_waiting,
    if(length(w) = 0, NULL, w[toUInt32(ceil(0.5 * length(w)))]) AS p50_wait_s,
    if(length(w) = 0, NULL, w[length(w)]) AS max_wait_s
FROM per_region
ORDER BY region;

-- ==========================================================================

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
SETTINGS join_use_nulls = 0;

-- ==========================================================================

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
ORDER BY action, outcome;

-- ==========================================================================

-- name: failure_clusters
-- title: Devices failing repeatedly: failure episodes (gaps and islands)
-- Why: one failure is noise, a device that keeps falling back into a failed
-- state is a cluster worth a person's time. Each device's status sequence
-- (by seq) is split into islands of consecutive failure states: an island
-- starts where a failed state follows a non-failed one (lagInFrame), and a
-- running sum of starts numbers the islands. Lists devices with two or more
-- episodes, worst first.
-- Unit: one row per device with at least two episodes. An episode is a run
-- of consecutive failed states (download_failed, verify_failed,
-- install_failed, partial, boot_failed) in the device's status events of
-- [since, until) by seq; failure_events counts the events in them,
-- longest_episode the events of the longest, first/last_failure their ts.
-- Denominator: none; counts.
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- so a failed state re-reported after a defer does not lengthen an
-- episode; and redelivered copies (FINAL).
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
flagged AS (
    SELECT
        device_id,
        region,
        target_firmware AS firmware,
        seq,
        ts,
        state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed') AS failed,
        lagInFrame(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed'), 1, 0)
            OVER (PARTITION BY device_id ORDER BY seq ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev_failed
    FROM events
),
numbered AS (
    SELECT
        *,
        sum(failed AND NOT prev_failed)
            OVER (PARTITION BY device_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS island
    FROM flagged
),
islands AS (
    SELECT device_id, region, firmware, island, count() AS events, min(ts) AS started, max(ts) AS ended
    FROM numbered
    WHERE failed
    GROUP BY device_id, region, firmware, island
)
SELECT
    region,
    device_id,
    firmware,
    count() AS episodes,
    sum(events) AS failure_events,
    max(events) AS longest_episode,
    min(started) AS first_failure,
    max(ended) AS last_failure
FROM islands
GROUP BY region, device_id, firmware
HAVING episodes >= 2
ORDER BY episodes DESC, failure_events DESC, region, device_id;

-- ==========================================================================

-- name: failure_hotspots
-- title: Hours where failures bunch, per region
-- Why: failures that cluster in time point at something outside the device
-- (a backend, a network, a wave of the rollout). Per region and hour:
-- failure events, their share of the region's failures, and how many times
-- the region's average hour that is (window aggregates over the region).
-- The {top} worst hours per region, ties sharing a rank.
-- Unit: one row per (region, hour) with at least one failure event
-- (download_failed, verify_failed, install_failed, partial, boot_failed),
-- hour the UTC hour of ts, ts in [since, until).
-- Denominators: share_of_region divides by the region's failure events in
-- the window; vs_average_hour by the mean failure events of the region's
-- hours that had any status event in the window (hours with none are not
-- in the mean).
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- and redelivered copies (FINAL).
-- empty: the window holds no failure event (download_failed, verify_failed, install_failed, partial, boot_failed) of the firmware and region asked for
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_hour AS (
    SELECT region, toStartOfHour(ts) AS hour, countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failures
    FROM events
    GROUP BY region, hour
),
ranked AS (
    SELECT
        *,
        RANK() OVER (PARTITION BY region ORDER BY failures DESC) AS rank_in_region,
        sum(failures) OVER (PARTITION BY region) AS region_failures,
        avg(failures) OVER (PARTITION BY region) AS region_hourly_avg
    FROM per_hour
)
SELECT
    region,
    rank_in_region,
    hour,
    failures,
    round(failures / region_failures, 4) AS share_of_region,
    round(failures / region_hourly_avg, 2) AS vs_average_hour
FROM ranked
WHERE failures > 0 AND rank_in_region <= {top:UInt32}
ORDER BY region, rank_in_region, hour;

-- ==========================================================================

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
ORDER BY devices DESC, state;

-- ==========================================================================

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
ORDER BY firmware, minute;

-- ==========================================================================

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
ORDER BY decisions DESC, action, reason;

-- ==========================================================================

-- name: regional_ranking
-- title: Regions ranked by partial-failure rate, per target firmware
-- Why: a rollout stalls where devices end half-updated. For every target
-- firmware, rank the regions by the share of updating devices that reported
-- `partial` at least once, so the worst region of each build comes first.
-- A device counts as updating once it reports any state past `idle` for that
-- target. Ties share a rank (RANK, not ROW_NUMBER).
-- How: the whole hours of the window come from rollout_devices_hourly
-- (exact distinct-device sets per firmware, region and hour, kept by a
-- materialized view); the minutes at either edge come from status_events.
-- Both are uniqExact states merged together, so the answer is exact, a
-- redelivered event counts once, and a fleet-wide ranking reads a few
-- thousand rollup rows instead of every event.
-- Unit: one row per (target firmware, region); devices counts devices
-- with a status event past idle (not offline) for that target in [since,
-- until), partial those that reported partial, failed_any those in any
-- failed state (download_failed, verify_failed, install_failed, partial,
-- boot_failed) at least once.
-- Denominator: partial_rate is partial over devices.
-- Excludes: devices that never left idle in the window, events without a
-- target firmware. Acknowledgements count: a device re-reporting partial
-- is partial, and counts once however often it reports.
-- Parameters (all queries): since, until (DateTime64(3, 'UTC')), firmware,
-- region ('' = all), top.
WITH
    toDateTime64({since:DateTime64(3, 'UTC')}, 3, 'UTC') AS since,
    toDateTime64({until:DateTime64(3, 'UTC')}, 3, 'UTC') AS until,
    -- Whole hours inside [since, until): [first_hour, last_hour).
    if(toStartOfHour(since) = since, toStartOfHour(since), toStartOfHour(since) + INTERVAL 1 HOUR) AS first_hour,
    toStartOfHour(until) AS last_hour,
states AS (
    SELECT
        target_firmware AS firmware,
        region,
        uniqExactIfMergeState(started) AS started,
        uniqExactIfMergeState(partial) AS partial,
        uniqExactIfMergeState(failed) AS failed
    FROM rollout_devices_hourly
    WHERE hour >= first_hour AND hour < last_hour
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
    GROUP BY firmware, region
    UNION ALL
    -- The edges. When the window holds no whole hour the two ranges
    -- overlap; sets make that harmless.
    SELECT
        target_firmware AS firmware,
        region,
        uniqExactIfState(device_id, state NOT IN ('idle', 'offline')) AS started,
        uniqExactIfState(device_id, state = 'partial') AS partial,
        uniqExactIfState(device_id, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
    FROM status_events
    WHERE ((ts >= since AND ts < least(first_hour, until)) OR (ts >= greatest(last_hour, since) AND ts < until))
      AND target_firmware != ''
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
    GROUP BY firmware, region
),
rates AS (
    SELECT
        firmware,
        region,
        uniqExactIfMerge(started) AS devices,
        uniqExactIfMerge(partial) AS partial,
        uniqExactIfMerge(failed) AS failed_any,
        round(partial / devices, 4) AS partial_rate
    FROM states
    GROUP BY firmware, region
    HAVING devices > 0
)
SELECT
    firmware,
    RANK() OVER (PARTITION BY firmware ORDER BY partial_rate DESC) AS rank,
    region,
    devices,
    partial,
    failed_any,
    partial_rate
FROM rates
ORDER BY firmware, rank, region;

-- ==========================================================================

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
ORDER BY kind, attempt_no;

-- ==========================================================================

-- name: rollout_funnel
-- title: Rollout funnel per target firmware and wave: how far devices got
-- Why: shows at which OTA phase a build loses devices, wave by wave (a
-- later wave doing worse than an earlier one is a regression the staged
-- rollout should have stopped). A device's wave is the one it reported
-- (0: unknown, no waves). A device counts at
-- a stage once it reported that stage or any later one (a device that
-- failed installing did download and verify); devices that never left idle
-- are not in the funnel. share_of_started is against
-- the first stage, step_conversion against the stage before (lagInFrame over
-- a running frame), so the weakest step has the lowest conversion.
-- Stages follow the device's state machine: downloaded is verifying or
-- later (verify_failed too), verified is installing or later, installed is
-- rebooting or later (partial and boot_failed are found after the reboot,
-- so a partial device did install), updated is updated.
-- Unit: devices, one row per (target firmware, wave, stage), counting each
-- device that reported the stage or a later one in [since, until).
-- Denominators: share_of_started divides by the cohort's started devices,
-- step_conversion by the devices of the stage before.
-- Excludes: devices that never left idle (or only went offline) in the
-- window, and events without a target firmware. Acknowledgements count (a
-- device re-reporting partial is at that stage).
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
),
per_device AS (
    SELECT
        target_firmware AS firmware,
        device_id,
        max(wave) AS wave,
        max(state NOT IN ('idle', 'offline')) AS started,
        max(state IN ('verifying', 'installing', 'rebooting', 'updated', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS downloaded,
        max(state IN ('installing', 'rebooting', 'updated', 'install_failed', 'partial', 'boot_failed')) AS verified,
        max(state IN ('rebooting', 'updated', 'partial', 'boot_failed')) AS installed,
        max(state = 'updated') AS updated
    FROM events
    WHERE target_firmware != ''
    GROUP BY firmware, device_id
    HAVING started
),
stages AS (
    SELECT firmware, wave, stage_no, stage, sum(reached) AS devices
    FROM per_device
    ARRAY JOIN
        [1, 2, 3, 4, 5] AS stage_no,
        ['started', 'downloaded', 'verified', 'installed', 'updated'] AS stage,
        [started, downloaded, verified, installed, updated] AS reached
    GROUP BY firmware, wave, stage_no, stage
)
SELECT
    firmware,
    wave,
    stage_no,
    stage,
    devices,
    round(devices / first_value(devices) OVER w, 4) AS share_of_started,
    round(devices / lagInFrame(devices, 1, devices) OVER w, 4) AS step_conversion
FROM stages
WINDOW w AS (PARTITION BY firmware, wave ORDER BY stage_no ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY firmware, wave, stage_no;

-- ==========================================================================

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
ORDER BY silent_ms DESC, region, device_id;

-- ==========================================================================

-- name: time_to_recover
-- title: Time to recover by region: from first failure to updated or rolled back
-- Why: the number a rollout owner is judged on. For every device that
-- failed, the time from its first failure to the first `updated` or
-- `rolled_back` after it. Percentiles use the nearest-rank method on the
-- sorted durations (the value at rank ceil(p * n)), so they are values
-- that occurred; NULL where no device of the region recovered.
-- Unit: seconds, to the millisecond; one row per region. A failure is a
-- status event in download_failed, verify_failed, install_failed, partial
-- or boot_failed with ts in [since, until); recovery the first updated or
-- rolled_back event after it in the same window.
-- Denominator: recovered_share is recovered_devices over failed_devices
-- (devices with a failure in the window); percentiles are over recovered
-- devices only.
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- and redelivered copies (the aggregates are idempotent).
WITH events AS (
    SELECT *
    FROM status_events -- no FINAL: every aggregate below is idempotent (max, min, argMax by seq, distinct devices), so a redelivered event cannot change the result
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_device AS (
    SELECT
        region,
        device_id,
        minIf(ts, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS first_failure,
        groupArrayIf(ts, state IN ('updated', 'rolled_back')) AS fixes
    FROM events
    GROUP BY region, device_id
    HAVING countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) > 0
),
recoveries AS (
    SELECT
        region,
        device_id,
        arrayFilter(t -> t > first_failure, fixes) AS after,
        length(after) > 0 AS recovered,
        if(recovered, dateDiff('millisecond', first_failure, arrayMin(after)) / 1000, 0) AS seconds
    FROM per_device
),
per_region AS (
    SELECT
        region,
        count() AS failed_devices,
        countIf(recovered) AS recovered_devices,
        arraySort(groupArrayIf(seconds, recovered)) AS s
    FROM recoveries
    GROUP BY region
)
SELECT
    region,
    failed_devices,
    recovered_devices,
    round(recovered_devices / failed_devices, 4) AS recovered_share,
    if(length(s) = 0, NULL, s[toUInt32(ceil(0.5 * length(s)))]) AS p50_s,
    if(length(s) = 0, NULL, s[toUInt32(ceil(0.9 * length(s)))]) AS p90_s,
    if(length(s) = 0, NULL, s[length(s)]) AS max_s
FROM per_region
ORDER BY region;

-- ==========================================================================

-- name: top_problem_devices
-- title: Top problem devices per region (ROW_NUMBER)
-- Why: gives each region's team its own short list. Devices are ordered
-- within their region by failure events, then by how recently they failed;
-- ROW_NUMBER (not RANK) keeps exactly {top} per region even on ties, and
-- device_id breaks ties so the list is stable.
-- Unit: one row per device, at most {top} per region. failure_events counts
-- the device's status events in a failed state (download_failed,
-- verify_failed, install_failed, partial, boot_failed) with ts in [since,
-- until); last_failure is the latest one's ts; current_state the device's
-- latest state in the window (by seq).
-- Denominator: none; counts, not rates.
-- Excludes: acknowledgements (status_events.acknowledgement, migration 12:
-- a device re-reporting the state it is in to answer a defer, a halt, or a
-- command it did not run; a true report, but no new failure),
-- redelivered copies (FINAL), and devices without a failure event.
WITH events AS (
    SELECT *
    FROM status_events FINAL
    WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
      AND ({firmware:String} = '' OR target_firmware = {firmware:String})
      AND ({region:String} = '' OR region = {region:String})
      AND NOT acknowledgement -- a re-reported state answering a command is no new event (migration 12)
),
per_device AS (
    SELECT
        region,
        device_id,
        countIf(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failure_events,
        maxIf(ts, state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS last_failure,
        argMax(state, seq) AS current_state
    FROM events
    GROUP BY region, device_id
    HAVING failure_events > 0
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY region ORDER BY failure_events DESC, last_failure DESC, device_id) AS rank_in_region
    FROM per_device
)
SELECT region, rank_in_region, device_id, failure_events, last_failure, current_state
FROM ranked
WHERE rank_in_region <= {top:UInt32}
ORDER BY region, rank_in_region;
