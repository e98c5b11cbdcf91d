#!/bin/sh
# SPDX-License-Identifier: MIT
# check.sh - the layering test (run by meson test): build each probe library with ninja
# and compare with what the layering rule expects, then check which modules include
# sqlite3.h, the FUSE headers, etcd_client.h and libcurl's.
#
#   check.sh NINJA BUILDDIR SRCDIR ok|fail:LIBRARY:HEADER...
#
# "fail" passes only when the compiler said HEADER was not found, so a probe broken
# for another reason (a typo, a missing dependency) does not pass as proof.

ninja=$1 build=$2 src=$3
shift 3
failed=0
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT

for spec in "$@"; do
	expect=${spec%%:*}
	rest=${spec#*:}
	lib=${rest%:*}
	header=${rest##*:}
	target=${lib#"$build"/}
	if "$ninja" -C "$build" "$target" >"$log" 2>&1; then
		got=ok
	elif grep -F "$header" "$log" | grep -Eq "No such file|file not found"; then
		got=fail
	else
		echo "FAIL: $target did not build, and not for want of $header:" >&2
		cat "$log" >&2
		failed=1
		continue
	fi
	if [ "$got" = "$expect" ]; then
		echo "ok: $target: $header $([ "$got" = ok ] && echo found || echo not found)"
	else
		echo "FAIL: $target: expected $expect, got $got ($header $([ "$got" = ok ] && echo found || echo not found))" >&2
		failed=1
	fi
done

# by_source PATTERN ALLOWED_DIR: no module of the daemon but ALLOWED_DIR includes PATTERN.
by_source() {
	for dir in common store txn fs mountctl; do
		[ "$dir" = "$2" ] && continue
		if grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]$1" "$src/$dir" \
			--include='*.c' --include='*.h' >&2; then
			echo "FAIL: $dir/ includes $1 (only $2/ may)" >&2
			failed=1
		fi
	done
	[ $failed -eq 0 ] && echo "ok: only $2/ includes $1"
}
by_source 'sqlite3\.h' store
by_source 'fuse(3/|_|\.h)' fs
# etcd is the store's business too: its client, and libcurl under it
by_source 'etcd_client(_i)?\.h' store
by_source 'curl/' store

exit $failed
