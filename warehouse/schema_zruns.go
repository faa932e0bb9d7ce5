package warehouse

// Version 8 gives each run's ground truth the time window it ran in, so
// `sentinel report efficacy` can score a run long after it ended: the
// status events, readings and decisions of a run are those of its devices
// inside [run_started, run_ended). Rows stored before version 8 read the
// zero time; the scorer then falls back to the run before and after it.
func init() {
	Migrations = append(Migrations, Migration{
		Version: 8,
		Name:    "ground truth run window",
		Statements: []string{
			`ALTER TABLE ` + TableGroundTruth + `
				ADD COLUMN IF NOT EXISTS controller LowCardinality(String) DEFAULT '' AFTER run_id,
				ADD COLUMN IF NOT EXISTS run_started DateTime64(3, 'UTC') DEFAULT 0 AFTER controller,
				ADD COLUMN IF NOT EXISTS run_ended DateTime64(3, 'UTC') DEFAULT 0 AFTER run_started`,
		},
	})
}
