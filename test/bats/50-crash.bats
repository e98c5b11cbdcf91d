#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The crash promises, each with SIGKILL and a restart of the daemon on the same DATADIR and
# MOUNTPOINT with no manual cleanup: idle -> nothing lost; mid-transaction -> that
# transaction lost, nothing of it visible; during commit -> all or nothing; after rename
# returned -> durable. Versions and commit_ts go on after a restart without reuse or gap.

load helper

setup() {
	sh_default_setup
	A="$MNT/default/agent-1"
	mkdir -p "$A"
	LOOPS=()
}

teardown() {
	local pid
	for pid in "${LOOPS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	sh_default_teardown
}

# ts_of KEYPATH / version_of KEYPATH
ts_of() { sh_xattr commit_ts "$1"; }
version_of() { sh_xattr version "$1"; }

@test "a restarted daemon detaches the dead mount a killed daemon left on its MOUNTPOINT" {
	echo v >"$A/k"
	sh_kill9
	run sh_errno stat "$MNT/.health"
	assert_output ENOTCONN
	sh_mount
	[ "$(sh_mount_count "$MNT")" -eq 1 ] || fail "mounts at $MNT: $(grep -F " $MNT " /proc/self/mountinfo)"
	run cat "$A/k"
	assert_output v
}

@test "idle: a daemon killed with SIGKILL loses nothing that was committed" {
	mkdir -p "$A/step"
	echo one >"$A/k"
	echo two >"$A/k"
	echo doomed >"$A/gone"
	rm "$A/gone"
	echo s1 >"$A/step/001"
	head -c 10000 /dev/urandom >"$SH_TMP/blob"
	cp "$SH_TMP/blob" "$A/blob"
	mv "$A/step/001" "$A/step/002"
	T="$MNT/.tx/job"
	mkdir "$T"
	echo '{"step":3}' >"$T/default/agent-1/progress"
	echo note >"$T/default/agent-1/note"
	mv "$T/.commit.pending" "$T/.commit"
	rmdir "$T"
	before=$(sh_dump_tree "$MNT")
	[ "$(echo "$before" | wc -l)" -eq 5 ] || fail "unexpected tree before the kill: $before"

	sh_restart

	after=$(sh_dump_tree "$MNT")
	diff <(echo "$before") <(echo "$after")
	cmp "$SH_TMP/blob" "$A/blob"
	run sh_errno stat "$A/gone"
	assert_output ENOENT
}

@test "mid-transaction: SIGKILL loses the open transaction and nothing of it is visible" {
	echo 1 >"$A/x"
	echo keep >"$A/z"
	ts=$(ts_of "$A/z")
	T="$MNT/.tx/job"
	mkdir "$T"
	echo 2 >"$T/default/agent-1/x"
	echo new >"$T/default/agent-1/y"
	rm "$T/default/agent-1/z"
	run cat "$T/default/agent-1/x"
	assert_output 2
	before=$(sh_dump_tree "$MNT")

	sh_restart

	after=$(sh_dump_tree "$MNT")
	diff <(echo "$before") <(echo "$after")
	run cat "$A/x"
	assert_output 1
	run sh_errno stat "$A/y"
	assert_output ENOENT
	run cat "$A/z"
	assert_output keep
	run ls -A "$MNT/.tx"
	assert_output ""
	run sh_errno stat "$T"
	assert_output ENOENT
	# The lost transaction used up no name, version or commit_ts.
	mkdir "$T"
	rmdir "$T"
	echo 3 >"$A/x"
	[ "$(version_of "$A/x")" -eq 2 ]
	[ "$(ts_of "$A/x")" -eq $((ts + 1)) ]
}

@test "during commit: after SIGKILL every multi-key commit is there whole or not at all" {
	local w i n ok
	sh_start_commit_loops ""
	# Let both writers commit for a while, then kill the daemon under them.
	sh_wait_acks 20 || fail "the writers did not commit 20 times each within 60 s: $(cat "$SH_TMP/loop.log")"
	for i in "${LOOPS[@]}"; do
		kill -0 "$i" || fail "a writer stopped before the kill: $(cat "$SH_TMP/loop.log")"
	done
	sh_kill9
	for i in "${LOOPS[@]}"; do wait "$i" || true; done
	LOOPS=()

	sh_mount

	local max_ts=0 a b c last last_ts
	for w in w1 w2; do
		a=$(cat "$MNT/default/$w/a")
		b=$(cat "$MNT/default/$w/b")
		c=$(cat "$MNT/default/$w/c")
		[ "$a" = "$b" ] && [ "$b" = "$c" ] || fail "$w: a=$a b=$b c=$c: a commit was applied in part"
		# One commit wrote each key once: its version is the commit's number, for all three.
		for k in a b c; do
			[ "$(version_of "$MNT/default/$w/$k")" -eq "$a" ] || fail "$w/$k: version $(version_of "$MNT/default/$w/$k"), value $a"
		done
		[ "$(ts_of "$MNT/default/$w/a")" = "$(ts_of "$MNT/default/$w/c")" ]
		# Every acknowledged commit is there (at most one more, whose reply the kill ate).
		read -r last last_ts < <(tail -n 1 "$SH_TMP/ack.$w")
		[ "$a" -ge "$last" ] || fail "$w: commit $last was acknowledged (commit_ts $last_ts) but the tree holds $a"
		[ "$a" -le $((last + 1)) ] || fail "$w: the tree holds $a, beyond the last commit attempted ($((last + 1)))"
		[ "$(ts_of "$MNT/default/$w/a")" -ge "$last_ts" ]
		# commit_ts strictly increases in one writer's commit order.
		cut -d ' ' -f 2 "$SH_TMP/ack.$w" | sort -n -c -u
		t=$(ts_of "$MNT/default/$w/a")
		if [ "$t" -gt "$max_ts" ]; then max_ts=$t; fi
	done
	# One global counter: no commit_ts was handed to two commits.
	run bash -c "cut -d ' ' -f 2 '$SH_TMP/ack.w1' '$SH_TMP/ack.w2' | sort -n | uniq -d"
	assert_output ""
	run ls -A "$MNT/.tx"
	assert_output ""
	# commit_ts goes on from the last commit, with no gap.
	echo after >"$A/after"
	[ "$(ts_of "$A/after")" -eq $((max_ts + 1)) ]
}

@test "after rename returned: a committed transaction survives a SIGKILL right after" {
	T="$MNT/.tx/job"
	mkdir "$T"
	mkdir -p "$T/default/agent-1"
	echo '{"step":3}' >"$T/default/agent-1/progress"
	echo second >"$T/default/agent-1/other"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output OK
	ts=$(jq -er .commit_ts "$T/.commit")

	sh_restart

	run cat "$A/progress"
	assert_output '{"step":3}'
	run cat "$A/other"
	assert_output second
	[ "$(ts_of "$A/progress")" -eq "$ts" ]
	[ "$(ts_of "$A/other")" -eq "$ts" ]
}

@test "after close returned: a one-key write survives a SIGKILL right after" {
	run sh_errno write "$A/k" durable
	assert_output OK

	sh_restart

	run cat "$A/k"
	assert_output durable
	[ "$(version_of "$A/k")" -eq 1 ]
}

@test "per-key versions are never reused after a restart, deleted keys included" {
	echo 1 >"$A/k"
	echo 2 >"$A/k"
	echo 3 >"$A/k"
	rm "$A/k"
	echo 1 >"$A/j"
	T="$MNT/.tx/job"
	mkdir "$T"
	echo 2 >"$T/default/agent-1/j"
	mv "$T/.commit.pending" "$T/.commit"
	rmdir "$T"
	[ "$(version_of "$A/j")" -eq 2 ]

	sh_restart

	echo again >"$A/k"
	[ "$(version_of "$A/k")" -eq 5 ]
	T="$MNT/.tx/job2"
	mkdir "$T"
	echo 3 >"$T/default/agent-1/j"
	mv "$T/.commit.pending" "$T/.commit"
	rmdir "$T"
	[ "$(version_of "$A/j")" -eq 3 ]
}

@test "commit_ts goes on after restarts without a gap" {
	echo a >"$A/k1"
	t1=$(ts_of "$A/k1")
	echo b >"$A/k2"
	[ "$(ts_of "$A/k2")" -eq $((t1 + 1)) ]

	sh_restart
	sh_restart

	echo c >"$A/k3"
	[ "$(ts_of "$A/k3")" -eq $((t1 + 2)) ]
	# An empty transaction is a commit too.
	T="$MNT/.tx/empty"
	mkdir "$T"
	mv "$T/.commit.pending" "$T/.commit"
	[ "$(jq -er .commit_ts "$T/.commit")" -eq $((t1 + 3)) ]
	rmdir "$T"

	sh_restart

	echo d >"$A/k4"
	[ "$(ts_of "$A/k4")" -eq $((t1 + 4)) ]
}
