# Shared by the bench scripts (source it after setting DIR): the child
# processes they start, stopped on exit, and a wait for a port to listen.
# shellcheck shell=bash
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT

# await_port waits up to ${2:-30} s for a TCP port to accept connections.
await_port() {
	local secs=${2:-30}
	for _ in $(seq $((secs * 10))); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on $1 after $secs s; see $DIR/*.log" >&2
	exit 1
}
