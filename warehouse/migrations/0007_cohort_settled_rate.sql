-- name: cohort failure rate over settled devices (breaker)
--
-- Adds to cohort_failure_rate the rate over the devices whose update has
-- ended (failed, updated or rolled back), which the breaker trips on: devices
-- still downloading dilute the plain rate while a bad build's failures pile
-- up, so it trips late. The columns of migration 4 keep their meaning.
--
--   - settled_devices: devices whose update ended in the window;
--   - settled_failure_rate: failed_devices / settled_devices;
--   - breaker_tripped: at least min_sample settled devices and a settled
--     rate at or above threshold.

CREATE OR REPLACE VIEW cohort_failure_rate AS
			WITH per_device AS (
				SELECT target_firmware AS firmware, region, device_id,
					max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed')) AS failed,
					max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed', 'updated', 'rolled_back', 'bricked')) AS settled
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
				enough_sample AND failed_devices / devices >= {threshold:Float64} AS tripped,
				sum(settled) AS settled_devices,
				round(if(settled_devices = 0, 0, failed_devices / settled_devices), 4) AS settled_failure_rate,
				settled_devices >= {min_sample:UInt32} AND settled_failure_rate >= {threshold:Float64} AS breaker_tripped
			FROM per_device
			GROUP BY firmware, region;
