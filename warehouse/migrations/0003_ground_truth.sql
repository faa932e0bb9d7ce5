-- name: simulator ground truth
--
-- Ground truth: what the simulator knows about each device of a run (what
-- failed, what would have fixed it, how it ended), so a run of the recoverer
-- can be scored with SQL against what really happened.

CREATE TABLE IF NOT EXISTS ground_truth (
				run_id              String,
				device_id           String,
				region              LowCardinality(String),
				model               LowCardinality(String),
				to_firmware         LowCardinality(String),
				wave                UInt16,
				bad_build           Bool,
				power               LowCardinality(String),
				weak_signal         Bool,
				fate                LowCardinality(String),
				cause               LowCardinality(String),
				started             Bool,
				remedy              LowCardinality(String),
				retries_to_fix      UInt16,
				battery_at_failure  Float32,
				charging_at_failure Bool,
				final_state         LowCardinality(String),
				final_firmware      LowCardinality(String),
				battery_pct         Float32,
				commands            UInt32,
				retries             UInt32,
				rollbacks           UInt32,
				defers              UInt32,
				halts               UInt32,
				unsafe_commands     UInt32,
				bricked_by          String,
				verdict             LowCardinality(String)
			) ENGINE = ReplacingMergeTree
			ORDER BY (run_id, region, device_id);
