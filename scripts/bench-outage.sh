#!/usr/bin/env bash
# Issue 19's long outage run: the demo's fleet (1,000 simulated devices,
# `sentinel simulate` defaults, one connection each) publishes through
# `sentinel broker` (defaults, with a store: --store-dir) into `sentinel
# ingest` (defaults: 4 connections) and `sentinel warehouse` (the embedded
# engine over HTTP), five processes on loopback. WARMUP into the run the
# warehouse is stopped, for OUTAGE; it comes back on the same data, the
# fleet goes on for COOLDOWN, stops, and once the warehouse has stopped
# growing the script compares what the devices saw acknowledged (the
# simulator's own count of PUBACK 0x00) with what is stored:
# count() FINAL and uniqExact(device_id, seq) over telemetry and
# status_events (less the brokers' Last Wills, which no device counted),
# plus dead letters. It prints the broker's refusals (0x97) and drops and
# the devices' held and dropped readings.
#
#   make build && scripts/bench-outage.sh
#
# WARMUP (60s), OUTAGE (600s, a multiple of STEP), COOLDOWN (60s), STEP
# (60s, between progress lines), DEVICES (1000) and BIN (bin/sentinel)
# override the defaults. Ports 18831, 18124, 19100 and
# 19101 on 127.0.0.1 must be free.
set -euo pipefail

BIN=${BIN:-bin/sentinel}
DEVICES=${DEVICES:-1000}
WARMUP=${WARMUP:-60}
OUTAGE=${OUTAGE:-600}
COOLDOWN=${COOLDOWN:-60}
MQTT=127.0.0.1:18831
HTTP=127.0.0.1:18124
BROKER_METRICS=127.0.0.1:19100
INGEST_METRICS=127.0.0.1:19101
DIR=$(mktemp -d /tmp/sentinel-outage.XXXXXX)
. "$(dirname "$0")/lib.sh"

# sql runs a query on the warehouse server and prints the result.
sql() { curl -sS --fail "http://$HTTP/" --data-binary "$1"; }

# metric prints the value of the Prometheus series $2 (a line prefix) at $1.
metric() { curl -sS "http://$1/metrics" | awk -v s="$2" 'index($0, s) == 1 { print $2; found = 1 } END { if (!found) print 0 }'; }

start_warehouse() {
	"$BIN" warehouse --data "$DIR/warehouse" --listen "$HTTP" --allow-anonymous --log-level warn >>"$DIR/warehouse.log" 2>&1 &
	warehouse=$!
	pids+=("$warehouse")
	await_port "$HTTP" 60
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" broker --listen "$MQTT" --allow-anonymous --store-dir "$DIR/broker" --metrics-listen "$BROKER_METRICS" \
	--log-level warn >"$DIR/broker.log" 2>&1 &
pids+=($!)
start_warehouse
await_port "$MQTT" 60
"$BIN" ingest --dsn "http://$HTTP/default" --broker "tcp://$MQTT" --metrics-listen "$INGEST_METRICS" \
	--log-level info >"$DIR/ingest.log" 2>&1 &
pids+=($!)
await_port "$INGEST_METRICS" 60

run=$((WARMUP + OUTAGE + COOLDOWN))
echo "fleet: $DEVICES devices for ${run}s; warehouse down from ${WARMUP}s to $((WARMUP + OUTAGE))s"
"$BIN" simulate --broker "tcp://$MQTT" --devices "$DEVICES" --duration "${run}s" --progress 60s \
	--log-level warn >"$DIR/simulate.log" 2>&1 &
fleet=$!
pids+=("$fleet")

sleep "$WARMUP"
kill -INT "$warehouse"
wait "$warehouse" || true
echo "$(date -u +%T) warehouse stopped; load $(cut -d' ' -f1-3 /proc/loadavg)"
STEP=${STEP:-60}
for ((t = STEP; t <= OUTAGE; t += STEP)); do
	sleep "$STEP"
	echo "$(date -u +%T) outage ${t}s: broker in flight $(metric $BROKER_METRICS sentinel_broker_inflight_messages)," \
		"backlog bytes $(metric $BROKER_METRICS sentinel_broker_backlog_bytes)," \
		"refused $(metric $BROKER_METRICS 'sentinel_broker_rejected_total{reason="quota_exceeded"}');" \
		"load $(cut -d' ' -f1-3 /proc/loadavg)"
done
start_warehouse
echo "$(date -u +%T) warehouse back"
wait "$fleet" || true
tail -n 1 "$DIR/simulate.log"

# Drained once the stored count holds still for 30 s.
stored=-1
while :; do
	now=$(sql "SELECT (SELECT count() FROM telemetry FINAL) + (SELECT count() FROM status_events FINAL WHERE NOT (state = 'offline' AND detail = 'connection lost'))")
	[ "$now" = "$stored" ] && break
	stored=$now
	sleep 30
done
published=$(sed -n 's/.*: \([0-9]*\) messages published.*/\1/p' "$DIR/simulate.log" | tail -n 1)
uniq=$(sql "SELECT (SELECT uniqExact(device_id, seq) FROM telemetry) + (SELECT uniqExact(device_id, seq) FROM status_events WHERE NOT (state = 'offline' AND detail = 'connection lost'))")
dead=$(sql "SELECT count() FROM dead_letters")
wills=$(sql "SELECT count() FROM status_events FINAL WHERE state = 'offline' AND detail = 'connection lost'")
echo "acknowledged to devices (PUBACK 0x00): $published"
echo "stored: count() FINAL $stored, uniqExact(device_id, seq) $uniq, dead letters $dead (Last Wills left out: $wills)"
echo "acknowledged and not stored: $((published > stored + dead ? published - stored - dead : 0))"
echo "broker: refused with 0x97 $(metric $BROKER_METRICS 'sentinel_broker_rejected_total{reason="quota_exceeded"}')," \
	"dropped $(curl -sS "http://$BROKER_METRICS/metrics" | grep '^sentinel_broker_dropped_total' | tr '\n' ' ')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
