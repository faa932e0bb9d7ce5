#!/usr/bin/env bash
# Decision latency of the recoverer in its own process, as production runs
# it: `sentinel broker`, `sentinel warehouse` (the embedded engine served
# over ClickHouse's HTTP interface), `sentinel ingest`, `sentinel recover`
# and `sentinel simulate`, five processes on loopback. The fleet is the one
# of `sentinel bench recover` (10,000 devices over 100 connections, the bad
# build in us-east). When the fleet stops, the recoverer is stopped and
# prints its decision latency (status received -> command sent, and ->
# PUBACK); then every process's CPU time is printed.
#
#   make build && scripts/bench-recover-latency.sh
#
# DEVICES, CONNS, DURATION and BIN override the defaults. Ports 18830 and
# 18123 on 127.0.0.1 must be free. RECOVER_NICE (e.g. -5, as root) runs the
# recoverer at that niceness; RECOVER_PROFILE=file writes its CPU profile, as a host of its own would: on two cores the
# simulated fleet, the load generator, otherwise competes with it for CPU.
set -euo pipefail

BIN=${BIN:-bin/sentinel}
DEVICES=${DEVICES:-10000}
CONNS=${CONNS:-100}
DURATION=${DURATION:-120s}
MQTT=127.0.0.1:18830
HTTP=127.0.0.1:18123
DIR=$(mktemp -d /tmp/sentinel-latency.XXXXXX)
. "$(dirname "$0")/lib.sh"

# await_log waits up to 30 s for a line matching $2 in log file $1.
await_log() {
	for _ in $(seq 300); do
		if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "no '$2' in $1 after 30 s:" >&2
	cat "$1" >&2
	exit 1
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" broker --listen "$MQTT" --allow-anonymous --log-level warn >"$DIR/broker.log" 2>&1 &
pids+=($!); broker=$!
"$BIN" warehouse --data "$DIR/warehouse" --listen "$HTTP" --allow-anonymous --log-level warn >"$DIR/warehouse.log" 2>&1 &
pids+=($!); warehouse=$!
await_port "$MQTT"
await_port "$HTTP"
"$BIN" ingest --dsn "http://$HTTP/default" --broker "tcp://$MQTT" --log-level info >"$DIR/ingest.log" 2>&1 &
pids+=($!); ingest=$!
"$BIN" recover --dsn "http://$HTTP/default" --broker "tcp://$MQTT" --backoff 2s --breaker-interval 1s \
	--no-rebuild --log-level info ${RECOVER_PROFILE:+--cpuprofile "$RECOVER_PROFILE"} >"$DIR/recover.log" 2>&1 &
pids+=($!); recover=$!
if [ -n "${RECOVER_NICE:-}" ]; then
	renice -n "$RECOVER_NICE" -p "$recover" >/dev/null
	echo "recoverer niceness: $RECOVER_NICE"
fi
await_log "$DIR/ingest.log" "ingestor started"
await_log "$DIR/recover.log" "msg=subscribed"

echo "fleet: $DEVICES devices over $CONNS connections for $DURATION..."
"$BIN" simulate --broker "tcp://$MQTT" --devices "$DEVICES" --conns "$CONNS" --duration "$DURATION" \
	--bad-build 1.5.0 --bad-build-region us-east --progress 0 --log-level warn >"$DIR/simulate.log" 2>&1
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU seconds (user+system) per process:"
tck=$(getconf CLK_TCK)
for name in broker warehouse ingest recover; do
	pid=${!name}
	read -r -a st <"/proc/$pid/stat"
	awk -v n="$name" -v u="${st[13]}" -v s="${st[14]}" -v t="$tck" 'BEGIN { printf "  %-10s %7.1f\n", n, (u + s) / t }'
done
kill -INT "$recover"
wait "$recover" || true
grep -E "^recoverer stopped|^decision latency" "$DIR/recover.log"
