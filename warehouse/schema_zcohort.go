package warehouse

// This file is named to sort after the other schema_*.go files: Go runs
// their init functions in file name order, and Migrations must stay in
// version order.

// Version 7 adds to the view the rate over the
// devices whose update has ended (failed, updated or rolled back), which
// the breaker trips on: devices still downloading dilute the plain rate
// while a bad build's failures pile up, so it trips late. The columns of
// version 4 keep their meaning; the analytics query selects them by name.
//
//   - settled_devices: devices whose update ended in the window;
//   - settled_failure_rate: failed_devices / settled_devices;
//   - breaker_tripped: at least min_sample settled devices and a settled
//     rate at or above threshold.
func init() {
	Migrations = append(Migrations, Migration{
		Version: 7,
		Name:    "cohort failure rate over settled devices (breaker)",
		Statements: []string{
			settledCohortView(`
				settled_devices >= {min_sample:UInt32} AND settled_failure_rate >= {threshold:Float64} AS breaker_tripped`),
		},
	})
}

// settledCohortView is the cohort_failure_rate view of version 7 and
// later: the columns of version 4, the settled devices and their rate, then
// breakerColumns, which decide breaker_tripped (and differ by version).
func settledCohortView(breakerColumns string) string {
	return `CREATE OR REPLACE VIEW ` + ViewCohortFailureRate + ` AS
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
				round(if(settled_devices = 0, 0, failed_devices / settled_devices), 4) AS settled_failure_rate,` + breakerColumns + `
			FROM per_device
			GROUP BY firmware, region`
}
