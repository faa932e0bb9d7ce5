// Package simulator runs a fleet of simulated IoT devices against an MQTT v5
// broker, for demos, tests, load, and for scoring the recovery controller
// against a known truth.
//
// Each device publishes telemetry on fleet/<region>/<device>/telemetry and
// an event on fleet/<region>/<device>/status at every OTA state change and
// command result, walks through a firmware rollout in waves (1 %, 10 %,
// 50 %, 100 % by default), and answers recovery commands (retry, rollback,
// defer, halt) that arrive on fleet/<region>/<device>/cmd, each with an
// outcome that depends on its battery, charger and signal at that moment.
//
// By default every device has its own MQTT connection with a persistent
// session and a Last Will that publishes an offline status; with
// Config.Conns the devices share K connections, for runs of 100,000
// devices. Each connection has one goroutine that owns its devices'
// timelines (a heap of their next events) and a few that publish.
//
// A fleet is deterministic: the same Config.Seed gives the same devices,
// regions, batteries, the same devices failing the rollout in the same way,
// and the same sequence of telemetry, because the device model
// (subpackage device) runs on its own event timeline rather than on the
// moments goroutines happen to wake.
//
// # Ground truth
//
// Fleet.GroundTruth returns a Truth per device: its fate, the cause, the
// remedy that would have fixed it (none, retry, retry_after_signal,
// rollback, charge_first, unrecoverable), the commands it received, how
// many were started unsafely, the command that bricked it, and a verdict
// (not_started, healthy, recovered, bricked_by_command, left_broken,
// in_progress). Fleet.WriteGroundTruth writes them as JSON lines, one
// object per device in fleet order with the JSON names of device.Truth and
// "v":1, readable by ClickHouse's JSONEachRow format; `sentinel simulate
// --truth-file` writes the file at the end of a run.
package simulator
