-- name: cohort breaker trips on the Wilson lower bound of the settled rate
--
-- The breaker waits for evidence: it trips when the lower bound of a
-- one-sided 95 % Wilson interval of the settled failure rate,
-- settled_failure_rate_low, reaches the threshold, not the rate itself. Early
-- in a wave a few devices decide the rate, and failures settle before
-- successes (a failed download ends sooner than an install and a reboot), so
-- a healthy region failing 35 % of its devices showed 45-50 % settled rates
-- for seconds and tripped at 0.5; the bad build's 69 % trips just the same, a
-- few seconds later (in a 10,000-device run: at 26 settled devices, 18 of
-- them failed). Other columns keep their meaning.

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
				round(if(settled_devices = 0, 0,
					(failed_devices / settled_devices + 1.645 * 1.645 / (2 * settled_devices)
					 - 1.645 * sqrt(failed_devices / settled_devices * (1 - failed_devices / settled_devices) / settled_devices
					                + 1.645 * 1.645 / (4 * settled_devices * settled_devices)))
					/ (1 + 1.645 * 1.645 / settled_devices)), 4) AS settled_failure_rate_low,
				settled_devices >= {min_sample:UInt32} AND settled_failure_rate_low >= {threshold:Float64} AS breaker_tripped
			FROM per_device
			GROUP BY firmware, region;
