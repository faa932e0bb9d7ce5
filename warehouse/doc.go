// Package warehouse is Sentinel's ClickHouse: the schema and its
// migrations, the two engines that run it, a query runner and the batch
// writer every service shares.
//
// One dialect, two engines, chosen by DSN:
//
//   - chdb:///path/to/dir runs the real ClickHouse engine inside the
//     process (libchdb, loaded lazily on first use; see package chdb).
//   - clickhouse://host:9000/db and http://host:8123/db reach a ClickHouse
//     server through clickhouse-go v2.
//
// Both run the same DDL and the same queries. Tables that receive
// redelivered MQTT messages are ReplacingMergeTree keyed on (device_id, seq),
// so a repeat never counts twice in queries that use FINAL (or the views
// built on it); the per-minute rollups count readings and events with exact
// sets of (device_id, seq) (unique_readings, unique_events), for the same
// reason.
//
// The schema's history is migrations/NNNN_what.sql, applied in version order
// by DB.Migrate and recorded in schema_migrations. A released migration is
// frozen: migrations/released.sha256 holds its checksum and a test fails if
// it changes, so a change to the schema is always a new file.
package warehouse
