#!/usr/bin/env bash
# DESIGN.md's module rule: no service module imports another; they meet only
# in proto (the wire) and warehouse (the tables). Leaf modules (quantile,
# credentials, cohortstat), which import no other module, are a mechanism
# every module may share. Test imports count too. cmd/sentinel (the wiring)
# and bench (the harness that drives every service) may import any module,
# so they are not checked; no module checked here may import them.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=github.com/sentinel-iot/sentinel
fail=0
leaves="quantile credentials cohortstat"
for m in $leaves proto warehouse broker simulator ingestor recoverer analytics; do
	case " $leaves " in
	*" $m "*) allowed="" ;;
	*) case $m in
		proto) allowed="$leaves" ;;
		warehouse) allowed="$leaves proto" ;;
		*) allowed="$leaves proto warehouse" ;;
		esac ;;
	esac
	deps=$(cd "$m" && go list -test -deps ./... | sed -e 's/ \[.*//' -e 's/_test$//' -e 's/\.test$//' |
		grep "^$prefix/" | sed "s#^$prefix/##" | cut -d/ -f1 | sort -u)
	for d in $deps; do
		[ "$d" = "$m" ] && continue
		case " $allowed " in *" $d "*) continue ;; esac
		echo "module $m imports module $d: DESIGN.md allows only: ${allowed:-nothing}"
		fail=1
	done
done
[ $fail = 0 ] && echo "module boundaries hold: no service module imports another"
exit $fail
