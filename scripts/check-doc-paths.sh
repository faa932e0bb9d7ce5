#!/usr/bin/env bash
# The files docs/ARCHITECTURE.md names exist: every backquoted path with a
# slash must exist in the tree, every backquoted bare file name
# (`commit.go`, `policy_test.go`) must be some tracked file's name, and a
# glob (`cmd_bench_*.go`) must match one. Topic names, placeholders
# (`<name>`, `NNNN`) and commands are not paths and are skipped, and so is
# DESIGN.md, the team's shared design, which lives outside the repo. A
# file moved or deleted without the map updated fails `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/ARCHITECTURE.md
names=$(git ls-files | sed 's#.*/##' | sort -u)
fail=0
while read -r p; do
	case "$p" in
	*'<'* | *NNNN* | *' '* | '$share/'* | fleet/* | sentinel/* | DESIGN.md) continue ;;
	*/*)
		p=${p%/...}
		[ -e "$p" ] && continue
		;;
	*.go | *.md | *.sql | *.sh | *.sha256)
		# A bare name, or a glob of one: some tracked file is called so.
		re=$(printf '%s' "$p" | sed -e 's/[.]/[.]/g' -e 's/[*]/.*/g')
		grep -qx -- "$re" <<<"$names" && continue
		;;
	*) continue ;;
	esac
	echo "$doc names $p, which is not in the tree"
	fail=1
done < <(grep -o '`[^`]*`' "$doc" | tr -d '`' | sort -u)
[ $fail = 0 ] && echo "every file $doc names exists"
exit $fail
