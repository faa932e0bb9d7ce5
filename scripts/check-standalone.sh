#!/usr/bin/env bash
# Every module in go.work must build on its own, outside the workspace
# (DESIGN.md's module rule): `cd <module> && GOWORK=off go build ./...`.
# A replace that lives only in go.work (the mochi fork once did), a go.sum
# entry the workspace's go.work.sum hides, or a go.mod tidy left undone
# breaks that without breaking the workspace build.
#
# This compiles each module's packages (cached after the first run) and
# resolves its test dependencies too (`go list -test -deps`, no compiling),
# so a test import missing from go.mod or go.sum fails here; the tests
# themselves run in `make test`. The modules are read from go.work, so a
# new one is checked once it is added there.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mods=$($GO work edit -json | sed -n 's/^[[:space:]]*"DiskPath": "\(.*\)".*/\1/p')
[ -n "$mods" ] || { echo "check-standalone: no modules found in go.work" >&2; exit 1; }
fail=0
for m in $mods; do
	if ! out=$(cd "$m" && GOWORK=off $GO build ./... 2>&1 && GOWORK=off $GO list -test -deps ./... 2>&1 >/dev/null); then
		echo "module $m does not build alone (cd $m && GOWORK=off go build ./...):"
		echo "$out" | sed 's/^/    /'
		fail=1
	fi
done
[ $fail = 0 ] && echo "every module builds alone (GOWORK=off): $(echo $mods | wc -w) modules"
exit $fail
