#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Directories below an agent: an explicit directory (mkdir) is state, committed to the
# log like a key, so it survives a restart, moves with a directory rename, shows in .at
# and .events, and a transaction's mkdir commits it.  A directory's mtime and ctime are
# the commit time of the last commit that changed its entries; its link count is 1
# ("not counted", as on btrfs), so find never takes a directory for a leaf.

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/agent"
}

teardown() {
	sh_default_teardown
}

# mtime PATH: a file's or directory's mtime with nanoseconds.
mtime() { stat -c %.9Y "$1"; }
ctime() { stat -c %.9Z "$1"; }

@test "renaming a directory moves the empty directories below it too" {
	mkdir -p "$A/src/e/deeper"
	echo x >"$A/src/f"
	mv "$A/src" "$A/dst"
	run ls "$A/dst"
	assert_success
	assert_output "$(printf 'e\nf')"
	[ -d "$A/dst/e/deeper" ]
	run sh_errno stat "$A/src"
	assert_output ENOENT
}

@test "renaming an empty directory moves it" {
	mkdir -p "$A/one"
	mv "$A/one" "$A/two"
	[ -d "$A/two" ]
	run sh_errno stat "$A/one"
	assert_output ENOENT
	sh_restart
	[ -d "$A/two" ]
	run sh_errno stat "$A/one"
	assert_output ENOENT
}

@test "an empty directory made with mkdir -p survives a SIGKILL and a restart" {
	mkdir -p "$MNT/k/s/d/e"
	sh_restart
	[ -d "$MNT/k/s/d/e" ]
	echo y >"$MNT/k/s/d/g"
	run cat "$MNT/k/s/d/g"
	assert_output y
	run ls "$MNT/k/s"
	assert_output d
}

@test "an empty directory survives a clean stop (snapshot) and --verify agrees with the log" {
	mkdir -p "$A/kept/inner" "$A/gone"
	echo v >"$A/key"
	rmdir "$A/gone"
	sh_umount
	[ -n "$(ls "$DATA/snapshots")" ]
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
	sh_mount
	[ -d "$A/kept/inner" ]
	run ls "$A"
	assert_output "$(printf 'kept\nkey')"
}

@test "rmdir of an empty directory is durable: it stays gone after a restart" {
	mkdir -p "$A/d1/d2"
	rmdir "$A/d1/d2"
	sh_restart
	[ -d "$A/d1" ]
	run sh_errno stat "$A/d1/d2"
	assert_output ENOENT
	rmdir "$A/d1"
	sh_restart
	run sh_errno stat "$A/d1"
	assert_output ENOENT
}

@test "rmdir of a directory with an empty subdirectory gives ENOTEMPTY" {
	mkdir -p "$A/p/c"
	run sh_errno rmdir "$A/p"
	assert_output ENOTEMPTY
	[ -d "$A/p/c" ]
}

@test "rmdir of a directory whose only entry is a file created and still open gives ENOTEMPTY" {
	mkdir -p "$A/d/e"
	exec 7>"$A/d/e/new"
	run sh_errno rmdir "$A/d/e"
	assert_output ENOTEMPTY
	run sh_errno rmdir "$A/d"
	assert_output ENOTEMPTY
	echo x >&7
	exec 7>&-
	sh_xattr version "$A/d/e/new" # waits for the commit of its release
	[ "$(cat "$A/d/e/new")" = x ]
}

@test "mkdir below an agent is one commit; .at shows the directory from that commit on" {
	t0=$(sh_probe_ts)
	mkdir "$A/made"
	t2=$(sh_probe_ts)
	[ "$t2" -eq $((t0 + 2)) ]
	run ls "$MNT/.at/$((t0 + 1))/ns/agent"
	assert_success
	assert_output made
	[ -d "$MNT/.at/$((t0 + 1))/ns/agent/made" ]
	run sh_errno stat "$MNT/.at/$t0/ns/agent/made"
	assert_output ENOENT
	rmdir "$A/made"
	t3=$(sh_probe_ts)
	run sh_errno stat "$MNT/.at/$t3/ns/agent/made"
	assert_output ENOENT
	[ -d "$MNT/.at/$t2/ns/agent/made" ]
}

@test ".events shows mkdir and rmdir as ops with ns, agent and key" {
	mkdir -p "$A/ev/sub"
	rmdir "$A/ev/sub"
	run jq -c '.ops[] | select(.op == "mkdir" or .op == "rmdir") | [.op, .ns, .agent, .key]' \
		"$MNT/.events/ns/agent.jsonl"
	assert_success
	assert_output "$(printf '%s\n' '["mkdir","ns","agent","ev"]' '["mkdir","ns","agent","ev/sub"]' \
		'["rmdir","ns","agent","ev/sub"]')"
}

@test "a directory made in a transaction exists after the commit, also after a restart" {
	T="$MNT/.tx/t1"
	mkdir "$T"
	mkdir -p "$T/ns/agent/staged/empty"
	run sh_errno stat "$A/staged"
	assert_output ENOENT
	sh_commit "$T"
	[ -d "$A/staged/empty" ]
	sh_restart
	[ -d "$A/staged/empty" ]
}

@test "renaming a directory in a transaction moves a committed empty directory below it" {
	mkdir -p "$A/tsrc/empty"
	echo k >"$A/tsrc/k"
	T="$MNT/.tx/t2"
	mkdir "$T"
	mv "$T/ns/agent/tsrc" "$T/ns/agent/tdst"
	run ls "$T/ns/agent/tdst"
	assert_output "$(printf 'empty\nk')"
	sh_commit "$T"
	run ls "$A/tdst"
	assert_output "$(printf 'empty\nk')"
	run sh_errno stat "$A/tsrc"
	assert_output ENOENT
}

@test "a directory's mtime and ctime are the commit time of a create in it" {
	mkdir -p "$A/m"
	echo 1 >"$A/m/f"
	[ "$(mtime "$A/m")" = "$(mtime "$A/m/f")" ]
	[ "$(ctime "$A/m")" = "$(mtime "$A/m/f")" ]
}

@test "a directory's mtime changes with unlink, mkdir, rmdir and rename in it, not with an overwrite" {
	mkdir -p "$A/m"
	echo 1 >"$A/m/f"
	t1=$(mtime "$A/m")
	echo 2 >"$A/m/f"
	[ "$(mtime "$A/m")" = "$t1" ]
	rm "$A/m/f"
	t2=$(mtime "$A/m")
	[ "$t2" != "$t1" ]
	mkdir "$A/m/d"
	t3=$(mtime "$A/m")
	[ "$t3" != "$t2" ]
	rmdir "$A/m/d"
	t4=$(mtime "$A/m")
	[ "$t4" != "$t3" ]
	echo 3 >"$A/m/g"
	t5=$(mtime "$A/m")
	mv "$A/m/g" "$A/m/h"
	[ "$(mtime "$A/m")" != "$t5" ]
	[ "$(mtime "$A/m")" = "$(mtime "$A/m/h")" ]
}

@test "a directory's mtime survives a restart" {
	mkdir -p "$A/r"
	echo 1 >"$A/r/f"
	t=$(mtime "$A/r")
	sh_restart
	[ "$(mtime "$A/r")" = "$t" ]
}

@test "a directory's link count is 1 (not counted) and find walks the whole tree" {
	mkdir -p "$A/n/s1" "$A/n/s2/s3" "$A/n/k"
	echo 1 >"$A/n/f"
	echo 2 >"$A/n/k/deep"
	[ "$(stat -c %h "$A/n")" -eq 1 ]
	[ "$(stat -c %h "$A/n/s2/s3")" -eq 1 ]
	[ "$(stat -c %h "$MNT")" -eq 1 ]
	[ "$(stat -c %h "$A/n/f")" -eq 1 ]
	run bash -c "find '$MNT/ns' -type f | sort"
	assert_success
	assert_output "$(printf '%s\n' "$A/n/f" "$A/n/k/deep" | sort)"
	run bash -c "find '$MNT/ns' -type d | sort"
	assert_output "$(printf '%s\n' "$MNT/ns" "$A" "$A/n" "$A/n/k" "$A/n/s1" "$A/n/s2" "$A/n/s2/s3" | sort)"
}
