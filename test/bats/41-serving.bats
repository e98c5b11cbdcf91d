#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# How requests are served: loop threads answer what lives in memory, a pool answers what
# reads the log (the past, events) or waits for a commit (a live mkdir); every serving
# mode (-s, loop_threads, pool_threads, libfuse's max_threads) serves the same tree and
# stops cleanly.

load helper

setup() {
	load_libs
	sh_setup_dirs
}

teardown() {
	sh_default_teardown
}

# pooled: the number of requests the pool has answered so far.
pooled() {
	awk '$1 == "statehouse_fuse_pooled_requests_total" { print $2; found = 1 }
	     END { exit !found }' "$MNT/.metrics" ||
		{ echo "no pooled-requests metric in .metrics" >&2; return 1; }
}

# exercise: the gestures every mode must serve; ends with the mount still live.
exercise() {
	local T ts
	echo v1 >"$MNT/ns/a/k"
	T="$MNT/.tx/t1"
	mkdir "$T"
	mkdir -p "$T/ns/a"
	echo v2 >"$T/ns/a/k"
	echo w >"$T/ns/a/other"
	sh_commit "$T"
	[ "$(cat "$MNT/ns/a/k")" = v2 ]
	ts=$(sh_probe_ts)
	[ "$(cat "$MNT/.at/$ts/ns/a/other")" = w ]
	[ "$(ls "$MNT/.history/ns/a/k")" != "" ]
	grep -q '"other"' "$MNT/.events/all.jsonl"
	mkdir "$MNT/ns/a/dir"
	[ -d "$MNT/ns/a/dir" ]
	rmdir "$MNT/ns/a/dir"
	[ ! -e "$MNT/ns/a/dir" ]
	[ "$(getfattr --only-values -n user.statehouse.version "$MNT/ns/a/k")" = 2 ]
}

@test "reads of the past and of events go to the pool; the live tree's do not" {
	sh_mount
	echo v1 >"$MNT/ns/a/k"
	local before after ts
	before=$(pooled)
	for _ in 1 2 3; do cat "$MNT/ns/a/k" >/dev/null; done
	stat "$MNT/ns/a/k" >/dev/null
	after=$(pooled)
	[ "$after" = "$before" ] || fail "live reads went to the pool: $before -> $after"
	ts=$(sh_probe_ts)
	[ "$(cat "$MNT/.at/$ts/ns/a/k")" = v1 ]
	cat "$MNT/.events/all.jsonl" >/dev/null
	after=$(pooled)
	if [ "${STATEHOUSE_TEST_SINGLE:-0}" = 1 ]; then
		[ "$after" = 0 ] || fail "-s has no pool, yet $after requests went to one"
	else
		[ "$after" -gt "$before" ] || fail "reads of .at and .events did not go to the pool"
	fi
}

@test "every serving mode serves the same tree and stops cleanly on unmount" {
	local mode
	for mode in "" "-o loop_threads=2" "-o loop_threads=3,pool_threads=1" "-o max_threads=4"; do
		# shellcheck disable=SC2086 # mode is a list of arguments
		sh_mount $mode
		exercise || fail "mode '$mode' failed"
		sh_umount || fail "mode '$mode' did not stop on unmount"
		rm -rf "$DATA"
		SH_VOLUME= # with an etcd store (scripts/test), a fresh volume too
	done
}

@test "SIGTERM stops a daemon with several loop threads, and the mount goes" {
	sh_mount -o loop_threads=3
	exercise
	kill -TERM "$SH_PID"
	local rc=0
	wait "$SH_PID" || rc=$?
	SH_PID=
	[ "$rc" = 0 ] || fail "the daemon exited with $rc after SIGTERM"
	! sh_is_mounted "$MNT" || fail "the mount is still there"
}

@test "loop_threads and pool_threads out of range are refused, naming the option" {
	local o
	for o in loop_threads=0 loop_threads=65 pool_threads=0 pool_threads=65; do
		run "$STATEHOUSED" "$DATA" "$MNT" -f -o "$o"
		assert_equal "$status" 2
		assert_output "statehoused: option out of range: $o (from 1 to 64)"
		[ ! -e "$DATA" ] || fail "a refused start ($o) made $DATA"
	done
}
