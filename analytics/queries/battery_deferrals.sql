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
ORDER BY region
