#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Storage failures: a full disk (DATADIR on a small tmpfs) and the test-only fault injection
# STATEHOUSE_FAULT=after=N,code=eio|full (doc/decisions.md 15). A failed commit changes
# nothing, reads keep working, and commits work again once the disk has room.

load helper

setup() {
	load_libs
	sh_setup_dirs
	SMALL="$SH_TMP/small"
}

teardown() {
	local rc=0
	sh_umount || rc=1
	if sh_is_mounted "$MNT"; then umount -l "$MNT" 2>/dev/null || true; fi
	if sh_is_mounted "$SMALL"; then umount "$SMALL" || umount -l "$SMALL" || rc=1; fi
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# small_datadir SIZE: DATA goes on a fresh tmpfs of SIZE.
small_datadir() {
	mkdir -p "$SMALL"
	mount -t tmpfs -o "size=$1,mode=0755" statehouse-test "$SMALL" ||
		sh_skip "cannot mount a tmpfs here (the test needs root)"
	DATA="$SMALL/data"
}

# mount_with_fault SPEC: mount a daemon that runs with STATEHOUSE_FAULT=SPEC.
mount_with_fault() {
	STATEHOUSE_FAULT="$1"
	export STATEHOUSE_FAULT
	sh_mount
	unset STATEHOUSE_FAULT
}

@test "on a full disk commits fail with ENOSPC, reads keep working and nothing is damaged" {
	small_datadir 16m
	sh_mount
	A="$MNT/default/agent-1"
	mkdir -p "$A"
	echo before >"$A/k"
	head -c 2000 /dev/urandom >"$SH_TMP/blob"
	cp "$SH_TMP/blob" "$A/blob"
	ts=$(sh_xattr commit_ts "$A/blob")
	before=$(sh_dump_tree "$MNT")

	head -c 64M /dev/zero >"$SMALL/filler" 2>/dev/null || true
	[ "$(stat -f -c %a "$SMALL")" -eq 0 ] || fail "the tmpfs still has room: $(df "$SMALL")"

	# Values large enough that SQLite needs new pages (a small commit may fit in the WAL).
	run sh_errno writen "$A/big" 900000
	assert_output ENOSPC
	run sh_errno writen "$A/k" 900000
	assert_output ENOSPC
	T="$MNT/.tx/full"
	mkdir "$T"
	run sh_errno writen "$T/default/agent-1/staged" 900000
	assert_output OK
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ENOSPC
	run jq -r .error "$T/.status"
	assert_output ENOSPC
	rmdir "$T"

	# Reads keep working and nothing committed before changed.
	run cat "$A/k"
	assert_output before
	cmp "$SH_TMP/blob" "$A/blob"
	diff <(echo "$before") <(sh_dump_tree "$MNT")

	# Room again: commits work without a restart; the failed ones used no commit_ts or version.
	rm "$SMALL/filler"
	run sh_errno writen "$A/big" 900000
	assert_output OK
	[ "$(stat -c %s "$A/big")" -eq 900000 ]
	[ "$(sh_xattr commit_ts "$A/big")" -eq $((ts + 1)) ]
	echo after >"$A/k"
	[ "$(sh_xattr version "$A/k")" -eq 2 ]
	run cat "$A/k"
	assert_output after
}

@test "a backup on a full disk fails with ENOSPC, leaves no copy behind, and works once there is room" {
	small_datadir 16m
	sh_mount
	mkdir -p "$MNT/default/agent-1"
	for i in 1 2 3 4; do head -c 900000 /dev/urandom >"$MNT/default/agent-1/v$i"; done
	head -c 64M /dev/zero >"$SMALL/filler" 2>/dev/null || true
	[ "$(stat -f -c %a "$SMALL")" -eq 0 ] || fail "the tmpfs still has room: $(df "$SMALL")"
	run sh_errno read "$MNT/.backup"
	assert_output ENOSPC
	run "$STATEHOUSECTL" -m "$MNT" backup "$SH_TMP/b.db"
	assert_failure 1
	assert_output "statehousectl: cannot back up the store of '$MNT': No space left on device"
	[ ! -e "$SH_TMP/b.db" ]
	run ls "$DATA"
	refute_output --partial backup-
	rm "$SMALL/filler"
	run "$STATEHOUSECTL" -m "$MNT" backup "$SH_TMP/b.db"
	assert_success
	[ -s "$SH_TMP/b.db" ]
}

@test "with an injected I/O error a commit fails with EIO, .health with EIO, and reads keep working" {
	mount_with_fault after=2,code=eio
	A="$MNT/default/agent-1"
	mkdir -p "$A"
	run sh_errno write "$A/k1" one
	assert_output OK
	run cat "$MNT/.health"
	assert_output ok
	# A transaction begun and staged while the store still works...
	T="$MNT/.tx/job"
	mkdir "$T"
	echo staged >"$T/default/agent-1/k3"
	run sh_errno write "$A/k2" two
	assert_output OK

	# ...the store fails from here on (after 2 successful commits).
	run sh_errno write "$A/k3" three
	assert_output EIO
	run sh_errno write "$A/k1" changed
	assert_output EIO
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output EIO
	run jq -r .error "$T/.status"
	assert_output EIO
	run sh_errno read "$MNT/.health"
	assert_output EIO

	# Reads of the live tree keep working, and the failed commits changed nothing.
	run cat "$A/k1"
	assert_output one
	run cat "$A/k2"
	assert_output two
	run sh_errno stat "$A/k3"
	assert_output ENOENT
	[ "$(sh_xattr version "$A/k1")" -eq 1 ]
}

@test "with an injected full disk a commit fails with ENOSPC and reads keep working" {
	mount_with_fault after=1,code=full
	A="$MNT/default/agent-1"
	mkdir -p "$A"
	run sh_errno write "$A/k1" one
	assert_output OK
	T="$MNT/.tx/job"
	mkdir "$T"
	echo staged >"$T/default/agent-1/k2"

	run sh_errno write "$A/k2" two
	assert_output ENOSPC
	run sh_errno write "$A/k1" changed
	assert_output ENOSPC
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ENOSPC

	run cat "$A/k1"
	assert_output one
	run sh_errno stat "$A/k2"
	assert_output ENOENT
	[ "$(sh_xattr version "$A/k1")" -eq 1 ]
}

# fill_disk: fill the tmpfs of DATA until not one block is left.
fill_disk() {
	head -c 64M /dev/zero >"$SMALL/filler" 2>/dev/null || true
	[ "$(stat -f -c %a "$SMALL")" -eq 0 ] || fail "the tmpfs still has room: $(df "$SMALL")"
}

@test "after a crash on a full disk the daemon starts again, serves reads, refuses commits with ENOSPC and records the start once there is room" {
	small_datadir 16m
	sh_mount -o snapshot_interval=0
	A="$MNT/default/agent-1"
	mkdir -p "$A"
	echo before >"$A/k"
	before=$(sh_dump_tree "$MNT")
	fill_disk
	run sh_errno writen "$A/big" 900000
	assert_output ENOSPC
	sh_kill9

	# The start on the full disk: reads are served, commits refused, the condition logged.
	sh_mount -o snapshot_interval=0
	grep -qE "statehoused: warning: cannot record the start: no space left on the device holding '$DATA'; serving reads, commits fail with ENOSPC until there is room" "$LOG" ||
		fail "no warning about the full disk: $(cat "$LOG")"
	if grep -F 'not an error' "$LOG"; then fail "a message says 'not an error'"; fi
	diff <(echo "$before") <(sh_dump_tree "$MNT")
	run sh_errno writen "$A/big" 900000
	assert_output ENOSPC
	run sh_errno write "$A/k" after
	assert_output ENOSPC
	sh_kill9

	# Again, and read-only as well.
	sh_mount -o snapshot_interval=0,ro
	run cat "$A/k"
	assert_output before
	sh_kill9
	sh_mount -o snapshot_interval=0
	run cat "$A/k"
	assert_output before

	# Room again: the start is recorded before the first commit, which then succeeds.
	rm "$SMALL/filler"
	echo after >"$A/k"
	run cat "$A/k"
	assert_output after
	[ "$(sh_xattr version "$A/k")" -eq 2 ]
	grep -qF 'statehoused: the start is recorded: the disk has room again' "$LOG" ||
		fail "no line about the recorded start: $(cat "$LOG")"
	sh_umount
	sh_mount -o snapshot_interval=0
	run cat "$A/k"
	assert_output after
}
