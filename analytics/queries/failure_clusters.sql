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
ORDER BY episodes DESC, failure_events DESC, region, device_id
