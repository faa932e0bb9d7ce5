#!/usr/bin/env bash
# Benchmark of the simulator (not a test): `sentinel broker` and `sentinel
# simulate` run as two processes on loopback, so the simulator's CPU and
# memory are measured apart from the broker's. Two scenarios:
#
#   own   10,000 devices, one MQTT connection each, for $DURATION
#   mux   100,000 devices over --conns 100, for $DURATION
#
# Usage: scripts/bench-simulator.sh [own|mux|all]   (default all)
# Environment: DURATION (default 60s), OWN_FLAGS / MUX_FLAGS (extra flags).
#
# Prints the simulator's progress lines (online devices, msg/s per window,
# devices by OTA state), its own getrusage summary, and samples of
# /proc/<pid>/stat and /proc/<pid>/status for both processes.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
DURATION=${DURATION:-60s}
TICK=$(getconf CLK_TCK)
go build -o bin/sentinel ./cmd/sentinel

cpu_s() { # utime+stime of a pid, in seconds
	awk -v t="$TICK" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat"
}
rss_mib() {
	awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$1/status"
}
hwm_mib() {
	awk '/^VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$1/status"
}

scenario() { # name, then simulate flags
	local name=$1; shift
	local port=$((20000 + RANDOM % 20000))
	echo "=== $name: sentinel simulate $* --duration $DURATION"
	bin/sentinel broker --listen "127.0.0.1:$port" --log-level error --allow-anonymous --device-rate -1 &
	local bpid=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	bin/sentinel simulate --broker "tcp://127.0.0.1:$port" --duration "$DURATION" --progress 10s --log-level error "$@" &
	local spid=$!
	local t=0
	while kill -0 "$spid" 2>/dev/null; do
		sleep 10
		t=$((t + 10))
		if [ -r "/proc/$spid/stat" ] && kill -0 "$spid" 2>/dev/null; then
			echo "  [$name ${t}s] simulator: cpu $(cpu_s $spid)s rss $(rss_mib $spid) MiB (peak $(hwm_mib $spid) MiB), threads $(awk '/^Threads/{print $2}' /proc/$spid/status), fds $(ls /proc/$spid/fd | wc -l) | broker: cpu $(cpu_s $bpid)s rss $(rss_mib $bpid) MiB" || true
		fi
	done
	wait "$spid"
	echo "  [$name end] broker: cpu $(cpu_s $bpid)s rss $(rss_mib $bpid) MiB (peak $(hwm_mib $bpid) MiB)"
	kill "$bpid"
	wait "$bpid" || true
}

echo "machine: nproc $(nproc)"
lscpu | head -15
case ${1:-all} in
own | all) scenario own --devices 10000 --connect-rate 1000 ${OWN_FLAGS:-} ;;&
mux | all) scenario mux --devices 100000 --conns 100 --connect-rate 5000 ${MUX_FLAGS:-} ;;
esac
