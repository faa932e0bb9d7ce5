-- name: device physics on telemetry
--
-- Telemetry carries the optional device-physics fields of the v1 wire
-- (proto Telemetry: battery_mv, battery_cycles, hw_model, storage,
-- boot_count), which the risk-aware recovery policy and the breaker's
-- release-health signals read. Every column defaults to 0 or '', the
-- wire's "unknown", so rows from before this migration, and readings from
-- firmware that does not send the fields, read as unknown. The types hold
-- the decoders' ranges: battery_mv at most proto.MaxBatteryMV (30000),
-- battery_cycles at most proto.MaxBatteryCycles (100000), boot_count at
-- most proto.MaxBootCount (the largest UInt32).

ALTER TABLE telemetry ADD COLUMN IF NOT EXISTS battery_mv UInt16 DEFAULT 0;
ALTER TABLE telemetry ADD COLUMN IF NOT EXISTS battery_cycles UInt32 DEFAULT 0;
ALTER TABLE telemetry ADD COLUMN IF NOT EXISTS hw_model LowCardinality(String) DEFAULT '';
ALTER TABLE telemetry ADD COLUMN IF NOT EXISTS storage LowCardinality(String) DEFAULT '';
ALTER TABLE telemetry ADD COLUMN IF NOT EXISTS boot_count UInt32 DEFAULT 0;
