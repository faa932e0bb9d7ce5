-- name: cohort_failure_rate
-- title: Cohort breaker input: failure rate per (firmware, region) in the window
-- Why: the recoverer stops retrying a cohort whose rollout is failing (the
-- cohort breaker); this is the one definition of that input. Over the
-- window [since, until), per target firmware and region: devices that
-- started the update, devices that failed at least once, and the rate.
-- enough_sample needs {min_sample} devices; tripped means enough_sample and
-- rate >= {threshold}. Worst cohorts first. The definition lives in the
-- warehouse as the parameterized view cohort_failure_rate (migrations 4,
-- 7 and 9), so the breaker and this query cannot drift apart; the breaker
-- trips on the lower 95 % Wilson bound of the view's rate over settled
-- devices, shown by selecting settled_devices, settled_failure_rate,
-- settled_failure_rate_low and breaker_tripped.
SELECT firmware, region, devices, failed_devices, failure_rate, enough_sample, tripped
FROM cohort_failure_rate(
    since = {since:DateTime64(3, 'UTC')}, until = {until:DateTime64(3, 'UTC')},
    firmware = {firmware:String}, region = {region:String},
    min_sample = {min_sample:UInt32}, threshold = {threshold:Float64})
ORDER BY tripped DESC, failure_rate DESC, firmware, region
