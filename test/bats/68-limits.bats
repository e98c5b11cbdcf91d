#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Limits that keep one user from exhausting the daemon: transactions per user (finished ones
# included), staged bytes per transaction and per user (EDQUOT), the largest .timeout_ms,
# finished transactions reaped after txn_linger_ms, and .metrics counting every refusal.
# Other users run through sh_as with paths relative to the mount (allow_other).

A=4001 # user A, who tries to take everything
B=4002 # user B, who must still get in

setup() {
	load helper
	load_libs
	sh_setup_dirs
}

teardown() {
	sh_default_teardown
}

# refused REASON: the value of statehouse_txn_refused_total{reason="REASON"}.
refused() {
	awk -v n="statehouse_txn_refused_total{reason=\"$1\"}" '$1 == n { print $2; f = 1 } END { exit !f }' \
		"$MNT/.metrics" || fail "no refusal series for $1 in .metrics: $(cat "$MNT/.metrics")"
}

# metric NAME: the value of statehouse_NAME in .metrics.
metric() {
	awk -v n="statehouse_$1" '$1 == n { print $2; f = 1 } END { exit !f }' "$MNT/.metrics" ||
		fail "no metric statehouse_$1 in .metrics"
}

# open_ns: a namespace everyone may write in, for transactions of other users.
open_ns() {
	mkdir -p "$MNT/ns"
	chmod 0777 "$MNT/ns"
}

@test "one user may hold max_txns_per_user transactions, finished ones included; the next mkdir fails with EDQUOT, others and root still begin" {
	sh_mount -o allow_other,max_txns_per_user=2
	open_ns
	run sh_errno_as $A $A mkdir .tx/a1
	assert_output OK
	run sh_errno_as $A $A mkdir .tx/a2
	assert_output OK
	run sh_errno_as $A $A mkdir .tx/a3
	assert_output EDQUOT
	[ ! -e "$MNT/.tx/a3" ]
	run sh_errno_as $B $B mkdir .tx/b1
	assert_output OK
	mkdir "$MNT/.tx/r1" "$MNT/.tx/r2" "$MNT/.tx/r3"
	# A committed transaction still counts while it stays in .tx; its rmdir frees the slot.
	sh_as $A $A sh -c 'echo v >.tx/a1/ns/a/k && mv .tx/a1/.commit.pending .tx/a1/.commit'
	run sh_errno_as $A $A mkdir .tx/a3
	assert_output EDQUOT
	sh_as $A $A rmdir .tx/a1
	run sh_errno_as $A $A mkdir .tx/a3
	assert_output OK
	[ "$(refused user_txns)" = 2 ]
	[ "$(refused open_txns)" = 0 ]
}

@test "max_txns_per_user defaults to a quarter of max_open_txns" {
	sh_mount -o allow_other,max_open_txns=8
	for t in a1 a2; do
		run sh_errno_as $A $A mkdir .tx/$t
		assert_output OK
	done
	run sh_errno_as $A $A mkdir .tx/a3
	assert_output EDQUOT
	run sh_errno_as $B $B mkdir .tx/b1
	assert_output OK
	# Past max_open_txns it is EAGAIN for everyone, root included, and counted apart.
	mkdir "$MNT/.tx/r1" "$MNT/.tx/r2" "$MNT/.tx/r3" "$MNT/.tx/r4" "$MNT/.tx/r5"
	run sh_errno mkdir "$MNT/.tx/r6"
	assert_output EAGAIN
	[ "$(refused open_txns)" = 1 ]
	[ "$(refused user_txns)" = 1 ]
}

@test "a write that would stage more than max_txn_bytes fails with EDQUOT at write() and stages none of its bytes" {
	sh_mount -o allow_other,max_txn_bytes=3000
	T="$MNT/.tx/t"
	mkdir "$T"
	run sh_errno writen "$T/ns/a/k1" 2000
	assert_output OK
	run sh_errno writen "$T/ns/a/k2" 2000
	assert_output EDQUOT
	# The file was made (an empty value) before its write was refused; nothing of the write.
	[ "$(stat -c %s "$T/ns/a/k2")" = 0 ]
	# Root gets the same limit; overwriting counts the new value in place of the old one.
	run sh_errno writen "$T/ns/a/k1" 2900
	assert_output OK
	run sh_errno write "$T/.note" "$(head -c 200 /dev/zero | tr '\0' n)"
	assert_output EDQUOT
	sh_commit "$T"
	[ "$(stat -c %s "$MNT/ns/a/k1")" = 2900 ]
	[ "$(stat -c %s "$MNT/ns/a/k2")" = 0 ]
	[ "$(refused txn_bytes)" = 2 ]
	# Another user's transaction has the same bound.
	open_ns
	sh_as $A $A mkdir .tx/u
	run sh_errno_as $A $A writen .tx/u/ns/b/k 3100
	assert_output EDQUOT
	[ "$(refused txn_bytes)" = 3 ]
}

@test "one user's transactions share max_user_txn_bytes: past it a write fails with EDQUOT until a transaction of theirs finishes" {
	sh_mount -o allow_other,max_txn_bytes=4000,max_user_txn_bytes=5000
	open_ns
	sh_as $A $A mkdir .tx/a1 .tx/a2
	run sh_errno_as $A $A writen .tx/a1/ns/a/k 2800
	assert_output OK
	run sh_errno_as $A $A writen .tx/a2/ns/a/k2 2800
	assert_output EDQUOT
	[ "$(refused user_bytes)" = 1 ]
	# Another user and root are not held back by A's total.
	sh_as $B $B mkdir .tx/b1
	run sh_errno_as $B $B writen .tx/b1/ns/b/k 2800
	assert_output OK
	mkdir "$MNT/.tx/r1"
	run sh_errno writen "$MNT/.tx/r1/ns/r/k" 3900
	assert_output OK
	# A's first commit gives its bytes back.
	sh_as $A $A mv .tx/a1/.commit.pending .tx/a1/.commit
	run sh_errno_as $A $A writen .tx/a2/ns/a/k2 2800
	assert_output OK
	sh_as $A $A mv .tx/a2/.commit.pending .tx/a2/.commit
	[ "$(stat -c %s "$MNT/ns/a/k2")" = 2800 ]
}

@test ".timeout_ms over max_txn_timeout_ms fails with EINVAL, and a default timeout over it is refused at start" {
	sh_mount -o max_txn_timeout_ms=50000
	T="$MNT/.tx/t"
	mkdir "$T"
	run sh_errno write "$T/.timeout_ms" 50001
	assert_output EINVAL
	[ "$(cat "$T/.timeout_ms")" = 30000 ]
	run sh_errno write "$T/.timeout_ms" 50000
	assert_output OK
	[ "$(cat "$T/.timeout_ms")" = 50000 ]
	[ "$(refused timeout)" = 1 ]
	sh_umount
	run timeout 20 "$STATEHOUSED" "$DATA" "$MNT" -f -o txn_timeout_ms=60000,max_txn_timeout_ms=50000
	assert_failure
	assert_output --partial max_txn_timeout_ms
	refute sh_is_mounted "$MNT"
}

@test "a committed or expired transaction stays readable in .tx for txn_linger_ms, then it is gone" {
	sh_mount -o txn_linger_ms=400
	mkdir "$MNT/.tx/c" "$MNT/.tx/e" "$MNT/.tx/open"
	echo 3600000 >"$MNT/.tx/open/.timeout_ms"
	echo 100 >"$MNT/.tx/e/.timeout_ms"
	echo v >"$MNT/.tx/c/ns/a/k"
	sh_commit "$MNT/.tx/c"
	jq -e '.commit_ts > 0' "$MNT/.tx/c/.commit"
	sh_wait_until 20 test ! -e "$MNT/.tx/c"
	sh_wait_until 20 test ! -e "$MNT/.tx/e"
	run ls "$MNT/.tx"
	assert_output open
	[ "$(metric transactions_reaped_total)" = 2 ]
	[ "$(metric finished_transactions)" = 0 ]
	[ "$(metric open_transactions)" = 1 ]
	# The name is free again.
	mkdir "$MNT/.tx/c"
}

@test "a finished transaction of a user stops counting against max_txns_per_user once reaped" {
	sh_mount -o allow_other,max_txns_per_user=1,txn_linger_ms=300
	open_ns
	sh_as $A $A sh -c 'mkdir .tx/a1 && echo v >.tx/a1/ns/a/k && mv .tx/a1/.commit.pending .tx/a1/.commit'
	run sh_errno_as $A $A mkdir .tx/a2
	assert_output EDQUOT
	sh_wait_until 20 test ! -e "$MNT/.tx/a1"
	run sh_errno_as $A $A mkdir .tx/a2
	assert_output OK
}
