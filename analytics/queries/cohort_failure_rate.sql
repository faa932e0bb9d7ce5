-- name: cohort_failure_rate
-- title: Cohort breaker: which (firmware, region) cohorts trip, by the recoverer's rule
-- Why: the recoverer stops retrying a cohort whose rollout is failing (the
-- cohort breaker); this shows, for the window [since, until), what that
-- rule says of each cohort, from the same warehouse view the recoverer's
-- breaker reads (cohort_failure_rate, migrations 4, 7 and 9) and with the
-- same parameters: a cohort trips when at least {min_sample} of its
-- devices have settled (failed, updated, rolled back or bricked) and the
-- lower bound of the one-sided 95 % Wilson interval of their failure rate
-- (settled_failure_rate_low) reaches {threshold}. The defaults (20, 0.5)
-- are the recoverer's (--breaker-min-sample, --breaker-threshold), and
-- the recoverer looks back 15 minutes: pass --since to match a live
-- breaker, or leave the window open to judge a whole rollout. Tripped
-- cohorts first, then by the bound.
-- Unit: one row per (target firmware, region); devices counts devices with
-- a status event past idle (not offline) in the window, settled_devices
-- those whose update ended, failed_devices those in a failed state
-- (download_failed, verify_failed, install_failed, partial, boot_failed)
-- at least once.
-- Denominators: failure_rate is failed over all devices (still updating
-- ones dilute it; the breaker does not use it); settled_failure_rate is
-- failed over settled devices, and settled_failure_rate_low its Wilson
-- lower bound, the number that trips.
-- Excludes: devices that never left idle in the window and events without
-- a target firmware. Acknowledgements count: a device re-reporting a
-- failed state is failed, and counts once however often it reports.
SELECT
    firmware,
    region,
    devices,
    settled_devices,
    failed_devices,
    failure_rate,
    settled_failure_rate,
    settled_failure_rate_low,
    settled_devices >= {min_sample:UInt32} AS enough_sample,
    breaker_tripped AS tripped
FROM cohort_failure_rate(
    since = {since:DateTime64(3, 'UTC')}, until = {until:DateTime64(3, 'UTC')},
    firmware = {firmware:String}, region = {region:String},
    min_sample = {min_sample:UInt32}, threshold = {threshold:Float64})
ORDER BY tripped DESC, settled_failure_rate_low DESC, firmware, region
