-- name: initial tables
--
-- The five tables the pipeline writes. Every table a message lands in is a
-- ReplacingMergeTree keyed so that a redelivered message collapses into one
-- row (in the background, and at once under FINAL).

-- Telemetry: a redelivered (device_id, seq) collapses into one row in the
-- background and at once under FINAL. The sort key leads with region for the
-- regional analytics; device_id, seq finish it as the dedup key (a device's
-- region never changes).
CREATE TABLE IF NOT EXISTS telemetry (
				device_id     String,
				region        LowCardinality(String),
				firmware      LowCardinality(String),
				state         LowCardinality(String),
				ts            DateTime64(3, 'UTC'),
				seq           UInt64,
				battery_pct   Float32,
				charging      Bool,
				rssi_dbm      Int16,
				temperature_c Float32,
				uptime_s      Int64,
				received_at   DateTime64(3, 'UTC')
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, seq);

CREATE TABLE IF NOT EXISTS status_events (
				device_id       String,
				region          LowCardinality(String),
				ts              DateTime64(3, 'UTC'),
				seq             UInt64,
				state           LowCardinality(String),
				firmware        LowCardinality(String),
				target_firmware LowCardinality(String),
				detail          String,
				command_id      String,
				action          LowCardinality(String),
				outcome         LowCardinality(String),
				received_at     DateTime64(3, 'UTC')
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, seq);

CREATE TABLE IF NOT EXISTS commands (
				command_id      String,
				device_id       String,
				region          LowCardinality(String),
				ts              DateTime64(3, 'UTC'),
				seq             UInt64,
				action          LowCardinality(String),
				target_firmware LowCardinality(String),
				reason          LowCardinality(String)
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, command_id);

CREATE TABLE IF NOT EXISTS decisions (
				device_id   String,
				region      LowCardinality(String),
				ts          DateTime64(3, 'UTC'),
				seq         UInt64,
				action      LowCardinality(String),
				reason      LowCardinality(String),
				command_id  String,
				state       LowCardinality(String),
				firmware    LowCardinality(String),
				battery_pct Float32,
				charging    Bool,
				rssi_dbm    Int16,
				attempt     UInt16
			) ENGINE = ReplacingMergeTree
			PARTITION BY toDate(ts)
			ORDER BY (region, device_id, seq);

CREATE TABLE IF NOT EXISTS dead_letters (
				received_at   DateTime64(3, 'UTC'),
				topic         String,
				reason        LowCardinality(String),
				error         String,
				payload       String,
				payload_bytes UInt32
			) ENGINE = MergeTree
			PARTITION BY toDate(received_at)
			ORDER BY (reason, received_at);
