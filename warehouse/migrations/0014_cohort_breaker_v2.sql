-- name: cohort breaker v2: cumulative cohort counts with silence and release health, and the verdicts table
--
-- cohort_breaker_counts is the input of the v2 breaker (recoverer) and of
-- the analytics query cohort_breaker: per (firmware, region), cumulative
-- since {since} (a rollout's lookback, not a sliding window: an
-- anytime-valid test needs a sample that only grows), up to {until}:
--
--   - devices, settled_devices, failed_devices: devices that started
--     updating to the firmware, whose update has ended, and that failed
--     at least once, where a device silent past its state's deadline
--     (downloading {dl_downloading} s, verifying {dl_verifying} s,
--     installing {dl_installing} s, rebooting {dl_rebooting} s before
--     {now}) counts as settled and failed: a bricked device stops talking,
--     and dropping it from both counts hides the worst builds;
--   - silent_devices: those silent devices;
--   - from_firmware: the version most of the cohort ran before it, whose
--     own row in the same region is the cohort's baseline (a previous
--     rollout of it, or a held-back control share that reinstalls it);
--   - last_event: the cohort's latest status event, to tell active
--     cohorts from finished ones;
--   - run_hours, boots, drain_hours, drain_points: release health from the
--     telemetry of devices while they run the firmware. boots counts
--     uptime resets between consecutive readings on the firmware both at
--     rest (idle or updated): a crash loop is that, while an update's own
--     reboot (read in the rebooting state) and a retry's or rollback's
--     are not. Counting every reset made a healthy build halt on
--     crash_rate in one of 30 healthy `sentinel bench breaker` rollouts;
--     drain_points the battery percentage points lost
--     between consecutive readings both off the charger, over drain_hours
--     of such intervals;
--   - reporting_devices, quiet_devices: devices whose latest reading is on
--     the firmware, and those of them not heard from for {quiet_s} s
--     before {now}: the reporting-ratio check compares the share of an
--     updated cohort gone quiet with the share of the region's devices
--     still on the previous firmware.
--
-- The view reads status_events and telemetry without FINAL: a
-- redelivered reading repeats its seq and pairs with itself (no time, no
-- drop, no reset), and max/argMax/argMin over a device's events are the
-- same with a repeat, while FINAL would merge the tables' parts at every
-- look of the breaker.
--
-- Uptime rather than the boot_count field: every firmware reports uptime,
-- while boot_count is optional on the wire, and an uptime that falls is a
-- reboot whatever the counter says.
--
-- breaker_verdicts is the breaker's log: one row each time a cohort's
-- verdict or evidence changes, with the rule, the deciding signal, the
-- estimate, the bound and the sample. The recoverer rebuilds its latched
-- verdicts from it on restart (argMax by ts), so a restart neither
-- re-trips nor forgets a trip, and analysts read the same numbers the
-- advisory carried. advised is the set of halted (or promoted) cohorts of
-- the firmware the advisory published with this row listed.

CREATE OR REPLACE VIEW cohort_breaker_counts AS
			WITH per_device AS (
				SELECT target_firmware AS cohort_fw, region, device_id,
					argMin(firmware, seq) AS from_fw,
					max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed', 'bricked')) AS failed_ever,
					max(state IN ('download_failed', 'verify_failed', 'install_failed', 'partial', 'boot_failed', 'updated', 'rolled_back', 'bricked')) AS settled_ever,
					argMax(state, seq) AS last_state,
					max(ts) AS last_ts,
					NOT settled_ever AND last_ts < {now:DateTime64(3, 'UTC')} - toIntervalSecond(multiIf(
						last_state = 'downloading', {dl_downloading:UInt32},
						last_state = 'verifying', {dl_verifying:UInt32},
						last_state = 'installing', {dl_installing:UInt32},
						last_state = 'rebooting', {dl_rebooting:UInt32},
						{dl_downloading:UInt32})) AS silent
				FROM status_events
				WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}
					AND target_firmware != '' AND state NOT IN ('idle', 'offline')
				GROUP BY cohort_fw, region, device_id
			),
			installs AS (
				SELECT cohort_fw AS firmware, region,
					count() AS devices,
					toUInt64(sum(settled_ever OR silent)) AS settled_devices,
					toUInt64(sum(failed_ever OR silent)) AS failed_devices,
					toUInt64(sum(silent)) AS silent_devices,
					topK(1)(from_fw)[1] AS from_firmware,
					max(last_ts) AS last_event
				FROM per_device
				GROUP BY cohort_fw, region
			),
			readings AS (
				SELECT firmware, region, device_id,
					arraySort(x -> x.1, groupArray((seq, toFloat64(battery_pct), ts, charging, uptime_s, state IN ('idle', 'updated')))) AS r,
					arrayPopBack(r) AS a, arrayPopFront(r) AS b
				FROM telemetry
				WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')} AND firmware != ''
				GROUP BY firmware, region, device_id
			),
			health AS (
				SELECT firmware, region,
					sum(arraySum(arrayMap((x, y) -> dateDiff('millisecond', x.3, y.3), a, b))) / 3600000 AS run_hours,
					toUInt64(sum(arrayCount((x, y) -> y.5 < x.5 AND x.6 AND y.6, a, b))) AS boots,
					sum(arraySum(arrayMap((x, y) -> if(x.4 OR y.4, 0, dateDiff('millisecond', x.3, y.3)), a, b))) / 3600000 AS drain_hours,
					sum(arraySum(arrayMap((x, y) -> if(x.4 OR y.4, 0, greatest(x.2 - y.2, 0)), a, b))) AS drain_points
				FROM readings
				GROUP BY firmware, region
			),
			latest AS (
				SELECT argMax(firmware, seq) AS last_fw, region, max(ts) AS heard
				FROM telemetry
				WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')} AND firmware != ''
				GROUP BY region, device_id
			),
			reporting AS (
				SELECT last_fw AS firmware, region, count() AS reporting_devices,
					countIf(heard < {now:DateTime64(3, 'UTC')} - toIntervalSecond({quiet_s:UInt32})) AS quiet_devices
				FROM latest
				GROUP BY last_fw, region
			),
			keys AS (
				SELECT firmware, region FROM installs
				UNION DISTINCT SELECT firmware, region FROM health
				UNION DISTINCT SELECT firmware, region FROM reporting
			)
			SELECT k.firmware AS firmware, k.region AS region,
				i.devices AS devices, i.settled_devices AS settled_devices, i.failed_devices AS failed_devices,
				i.silent_devices AS silent_devices, i.from_firmware AS from_firmware, i.last_event AS last_event,
				h.run_hours AS run_hours, h.boots AS boots, h.drain_hours AS drain_hours, h.drain_points AS drain_points,
				r.reporting_devices AS reporting_devices, r.quiet_devices AS quiet_devices
			FROM keys AS k
			LEFT JOIN installs AS i ON i.firmware = k.firmware AND i.region = k.region
			LEFT JOIN health AS h ON h.firmware = k.firmware AND h.region = k.region
			LEFT JOIN reporting AS r ON r.firmware = k.firmware AND r.region = k.region
			SETTINGS join_use_nulls = 0;

CREATE TABLE IF NOT EXISTS breaker_verdicts (
				ts              DateTime64(3, 'UTC'),
				firmware        LowCardinality(String),
				region          LowCardinality(String),
				rule            LowCardinality(String),
				verdict         LowCardinality(String),
				signal          LowCardinality(String),
				estimate        Float64,
				bound           Float64,
				bound_limit     Float64,
				baseline        Float64,
				sample          Float64,
				events          Float64,
				baseline_sample Float64,
				baseline_events Float64,
				alpha           Float64,
				active          UInt16,
				advised         Bool,
				evidence        String
			) ENGINE = MergeTree
			PARTITION BY toDate(ts)
			ORDER BY (firmware, region, ts);
