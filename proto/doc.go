// Package proto is Sentinel's wire: the MQTT topics devices and services
// share, the JSON messages they exchange, and the strict decoders every
// consumer runs before trusting a payload.
//
// Version 1 of the wire is JSON. Every message carries "v":1, the device it
// concerns ("device_id"), a timestamp ("ts", RFC 3339 with milliseconds) and
// a per-device sequence number ("seq") that only grows, so consumers can drop
// duplicates and reorderings. Decoding is strict: wrong types, values out of
// range, unknown states or fields, keys in the wrong case or given twice,
// absent required fields, null values, strings that are not UTF-8, deep
// nesting, timestamps a warehouse cannot store, oversized payloads and a
// device ID that differs from the one in the topic are errors that name the
// field and the reason, never silently zeroed or replaced values.
//
// The package depends on the standard library only, so devices, services and
// third-party tools can import it without pulling in a broker or a database.
package proto
