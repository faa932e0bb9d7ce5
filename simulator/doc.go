// Package simulator runs a fleet of simulated IoT devices against an MQTT v5
// broker, for demos, tests and load.
//
// Each device has its own MQTT connection. It publishes telemetry on
// fleet/<region>/<device>/telemetry and an event on fleet/<region>/<device>/status
// at every OTA state change, walks through a firmware rollout, and answers
// recovery commands (retry, rollback, defer, halt) that arrive on
// fleet/<region>/<device>/cmd. A fleet is deterministic: the same Config.Seed
// gives the same devices, regions, batteries and the same devices failing
// the rollout, so analytics and the recovery controller can be checked
// against a known truth (Fleet.Devices).
//
// The pure model (fleet generation, the OTA state machine, command rules)
// lives in the device subpackage; this package drives it over MQTT.
package simulator
