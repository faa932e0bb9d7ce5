-- name: cohort failure rate view (cohort breaker input)
--
-- The cohort breaker's input (warehouse.ViewCohortFailureRate): a
-- parameterized view giving, per (target firmware, region), the devices that
-- started the update in [since, until), how many of them failed at least
-- once, the failure rate, and whether the cohort trips the breaker (at least
-- min_sample devices and a rate at or above threshold). The recoverer's
-- breaker and the analytics query cohort_failure_rate both select from it.
-- Migrations 7 and 9 replace it.

-- No FINAL: every aggregate is idempotent (max per device, distinct
-- devices), so a redelivered event changes nothing.
CREATE VIEW IF NOT EXISTS cohort_failure_rate AS
			WITH per_device AS (
				SELECT target_firmware AS firmware, region, device_id,
					max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed
				FROM status_events
				WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
					AND ({firmware:String} = '' OR target_firmware = {firmware:String})
					AND ({region:String} = '' OR region = {region:String})
					AND target_firmware != '' AND state NOT IN ('idle', 'offline')
				GROUP BY firmware, region, device_id
			)
			SELECT
				firmware,
				region,
				count() AS devices,
				sum(failed) AS failed_devices,
				round(failed_devices / devices, 4) AS failure_rate,
				devices >= {min_sample:UInt32} AS enough_sample,
				enough_sample AND failed_devices / devices >= {threshold:Float64} AS tripped
			FROM per_device
			GROUP BY firmware, region;
