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
ORDER BY firmware, wave, stage_no
