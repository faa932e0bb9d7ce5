-- name: per-state timeouts, one table for the recoverer and the analysts
--
-- How long a device may sit in one OTA state before it counts as stuck,
-- per state, in milliseconds. The recoverer reads it at start (a device
-- held in a state past its timeout with a command out is halted as
-- stuck_after_command) and the analytics query stuck_devices joins it, so
-- both use the same numbers; they had drifted apart (installing 10 min in
-- the query against 5 in the recoverer, rebooting 5 against 3,
-- rolling_back 10 against 5). The seed is recoverer/policy's
-- DefaultStateTimeouts, which a recoverer test holds equal to this table.
-- To change a timeout, insert a row with a later updated_at: the latest row
-- of a state wins (ReplacingMergeTree(updated_at), read with FINAL), and
-- the seed's fixed updated_at never beats it, so running this migration
-- again (two services at once) adds only copies of the seed that collapse.

CREATE TABLE IF NOT EXISTS state_timeouts (
	state      LowCardinality(String),
	timeout_ms UInt64,
	updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY state;

INSERT INTO state_timeouts (state, timeout_ms, updated_at) VALUES
	('downloading', 600000, '2026-12-02 00:00:00.000'),
	('verifying', 120000, '2026-12-02 00:00:00.000'),
	('installing', 300000, '2026-12-02 00:00:00.000'),
	('rebooting', 180000, '2026-12-02 00:00:00.000'),
	('rolling_back', 300000, '2026-12-02 00:00:00.000'),
	('download_failed', 300000, '2026-12-02 00:00:00.000'),
	('verify_failed', 300000, '2026-12-02 00:00:00.000'),
	('install_failed', 300000, '2026-12-02 00:00:00.000'),
	('partial', 300000, '2026-12-02 00:00:00.000'),
	('boot_failed', 300000, '2026-12-02 00:00:00.000'),
	('updated', 300000, '2026-12-02 00:00:00.000');
