package warehouse

// Version 9 makes the breaker wait for evidence: it trips when the lower
// bound of a one-sided 95 % Wilson interval of the settled failure rate,
// settled_failure_rate_low, reaches the threshold, not the rate itself.
// Early in a wave a few devices decide the rate, and failures settle before
// successes (a failed download ends sooner than an install and a reboot),
// so a healthy region failing 35 % of its devices showed 45-50 % settled
// rates for seconds and tripped at 0.5; the bad build's 69 % trips just the
// same, a few seconds later (in a 10,000-device run: at 26 settled devices,
// 18 of them failed). Other columns keep their meaning.
func init() {
	Migrations = append(Migrations, Migration{
		Version: 9,
		Name:    "cohort breaker trips on the Wilson lower bound of the settled rate",
		Statements: []string{
			settledCohortView(`
				round(if(settled_devices = 0, 0,
					(failed_devices / settled_devices + 1.645 * 1.645 / (2 * settled_devices)
					 - 1.645 * sqrt(failed_devices / settled_devices * (1 - failed_devices / settled_devices) / settled_devices
					                + 1.645 * 1.645 / (4 * settled_devices * settled_devices)))
					/ (1 + 1.645 * 1.645 / settled_devices)), 4) AS settled_failure_rate_low,
				settled_devices >= {min_sample:UInt32} AND settled_failure_rate_low >= {threshold:Float64} AS breaker_tripped`),
		},
	})
}
