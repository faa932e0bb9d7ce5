#!/usr/bin/env bash
# DESIGN.md's module rule: no service module imports another; they meet only
# in proto (the wire) and warehouse (the tables). Leaf modules (quantile,
# credentials, cohortstat, mqttconn), which import no other module, are a
# mechanism every module may share. Test imports count too. cmd/sentinel
# (the wiring) and bench (the harness that drives every service) may
# import any module, so they are not checked; no module checked here may
# import them.
#
# One exception, for tests only: the test files of the service modules
# (simulator, ingestor, recoverer) may import broker/brokertest, and
# nothing else of the broker module. It starts Sentinel's own broker, the
# real part those services talk to over the wire, so their tests run
# against its credentials, ACL and limits instead of a bare test broker.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=github.com/sentinel-iot/sentinel
fail=0
# check reports each Sentinel package (path below $prefix) of module $m
# that is neither in $m nor allowed: a module or a package named in
# $allowed.
check() {
	local m=$1 allowed=$2 what=$3
	shift 3
	for p in "$@"; do
		d=${p%%/*}
		[ "$d" = "$m" ] && continue
		case " $allowed " in *" $d "* | *" $p "*) continue ;; esac
		echo "module $m $what $p: DESIGN.md allows only: ${allowed:-nothing}"
		fail=1
	done
}
leaves="quantile credentials cohortstat mqttconn"
for m in $leaves proto warehouse broker simulator ingestor recoverer analytics; do
	case " $leaves " in
	*" $m "*) allowed="" ;;
	*) case $m in
		proto) allowed="$leaves" ;;
		warehouse) allowed="$leaves proto" ;;
		*) allowed="$leaves proto warehouse" ;;
		esac ;;
	esac
	# Everything the module's packages import, directly or not.
	deps=$(cd "$m" && go list -deps ./... | grep "^$prefix/" | sed "s#^$prefix/##" | sort -u || true)
	# What its test files import, directly: the rest of their imports is
	# covered above, or by the imported module's own turn here.
	tdeps=$(cd "$m" && go list -f '{{join .TestImports "\n"}}{{"\n"}}{{join .XTestImports "\n"}}' ./... |
		grep "^$prefix/" | sed "s#^$prefix/##" | sort -u || true)
	tallowed=$allowed
	case $m in simulator | ingestor | recoverer) tallowed="$allowed broker/brokertest" ;; esac
	# shellcheck disable=SC2086
	check "$m" "$allowed" imports $deps
	# shellcheck disable=SC2086
	check "$m" "$tallowed" "tests import" $tdeps
done
[ $fail = 0 ] && echo "module boundaries hold: no service module imports another"
exit $fail
