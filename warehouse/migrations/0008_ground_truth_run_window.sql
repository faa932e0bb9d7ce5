-- name: ground truth run window
--
-- Each run's ground truth gets the time window it ran in, so `sentinel
-- report efficacy` can score a run long after it ended: the status events,
-- readings and decisions of a run are those of its devices inside
-- [run_started, run_ended). Rows stored before it read the zero time; the
-- scorer then falls back to the run before and after it.

ALTER TABLE ground_truth
				ADD COLUMN IF NOT EXISTS controller LowCardinality(String) DEFAULT '' AFTER run_id,
				ADD COLUMN IF NOT EXISTS run_started DateTime64(3, 'UTC') DEFAULT 0 AFTER controller,
				ADD COLUMN IF NOT EXISTS run_ended DateTime64(3, 'UTC') DEFAULT 0 AFTER run_started;
