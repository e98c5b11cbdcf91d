#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The live tree <ns>/<agent>/<key>: every gesture of "The tree" and decisions.md
# 2, 3, 12, 17, 18, through a real mount. Each write in the live tree autocommits.

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

@test "echo into default/agent-1 on a fresh mount commits a key that cat reads back" {
	echo hello > $MNT/default/agent-1/greeting
	run cat $MNT/default/agent-1/greeting
	assert_success
	assert_output hello
	run ls "$MNT/default/agent-1"
	assert_output greeting
}

@test "cat reads the latest committed value after an overwrite with a shorter value" {
	echo 'a rather long first value' >"$A/k"
	echo short >"$A/k"
	run cat "$A/k"
	assert_output short
	[ "$(stat -c %s "$A/k")" -eq 6 ]
}

@test "values are stored byte for byte, including NUL and non-UTF-8 bytes" {
	printf 'a\0b\377\n\0z' >"$A/bin"
	[ "$(stat -c %s "$A/bin")" -eq 7 ]
	cmp <(printf 'a\0b\377\n\0z') "$A/bin"
}

@test "a 300000-byte random value written in several write calls reads back byte-exact" {
	head -c 300000 /dev/urandom >"$SH_TMP/blob"
	cat "$SH_TMP/blob" >"$A/blob"
	[ "$(stat -c %s "$A/blob")" -eq 300000 ]
	cmp "$SH_TMP/blob" "$A/blob"
	[ "$(sh_xattr version "$A/blob")" = 1 ]
}

@test "a JSON value round-trips and jq reads it from the mount" {
	echo '{"step":3,"done":false}' >"$A/progress"
	run jq -c . "$A/progress"
	assert_success
	assert_output '{"step":3,"done":false}'
}

@test "a key containing / shows as subdirectories" {
	mkdir -p "$A/step"
	echo one >"$A/step/001"
	echo two >"$A/step/002"
	[ -d "$A/step" ]
	run ls "$A/step"
	assert_output "$(printf '001\n002')"
	run ls "$A"
	assert_output step
	run cat "$A/step/002"
	assert_output two
}

@test "mkdir -p creates directories that keys can be written under" {
	mkdir -p "$A/deep/er/path"
	[ -d "$A/deep/er/path" ]
	echo v >"$A/deep/er/path/k"
	run cat "$A/deep/er/path/k"
	assert_output v
	mkdir -p "$MNT/ns2/agent-9"
	echo w >"$MNT/ns2/agent-9/k"
	run cat "$MNT/ns2/agent-9/k"
	assert_output w
}

@test "mkdir -p on directories that already exist succeeds and commits nothing" {
	mkdir -p "$A/d"
	echo v >"$A/d/k"
	ts0="$(sh_probe_ts)"
	mkdir -p "$A/d"
	mkdir -p "$MNT/ns/a"
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
}

@test "a directory made in a transaction stays when its last key is deleted, until rmdir" {
	# step/ reaches the live tree only through a commit, never through a live mkdir
	T="$MNT/.tx/mk"
	mkdir "$T"
	mkdir -p "$T/ns/a/step"
	echo one >"$T/ns/a/step/001"
	echo keep >"$T/ns/a/other"
	sh_commit "$T"
	[ -d "$A/step" ]
	run cat "$A/step/001"
	assert_output one
	rm "$A/step/001"
	run ls "$A"
	assert_output "$(printf 'other\nstep')"
	rmdir "$A/step"
	run ls "$A"
	assert_output other
	run sh_errno stat "$A/step"
	assert_output ENOENT
}

@test "stat reports the value's length as size and the commit time as mtime" {
	before="$(date +%s)"
	printf '0123456789' >"$A/k"
	after="$(date +%s)"
	[ "$(stat -c %s "$A/k")" -eq 10 ]
	mtime="$(stat -c %Y "$A/k")"
	[ "$mtime" -ge "$before" ]
	[ "$mtime" -le "$after" ]
	[ -f "$A/k" ]
}

@test "getfattr -d shows the key's version and the commit_ts of its last commit" {
	ts0="$(sh_probe_ts)"
	echo hello >"$A/k"
	run getfattr -d "$A/k"
	assert_success
	assert_line 'user.statehouse.version="1"'
	assert_line "user.statehouse.commit_ts=\"$((ts0 + 1))\""
	echo again >"$A/k"
	[ "$(sh_xattr version "$A/k")" = 2 ]
	[ "$(sh_xattr commit_ts "$A/k")" = $((ts0 + 2)) ]
}

@test "each write to a key commits exactly one new version and one commit_ts" {
	ts0="$(sh_probe_ts)"
	for i in 1 2 3; do echo "v$i" >"$A/k"; done
	[ "$(sh_xattr version "$A/k")" = 3 ]
	[ "$(sh_xattr commit_ts "$A/k")" = $((ts0 + 3)) ]
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 4)) ]
}

@test "a key, a directory and a transaction's file have no attribute but the two of statehouse" {
	echo v >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	echo staged >"$T/ns/a/k"
	for f in "$A/k" "$A" "$T/ns/a/k" "$MNT/.tx/t/.commit.pending"; do
		for n in security.capability user.other user.statehouse; do
			run getfattr -n "$n" "$f"
			assert_failure
			assert_output --partial "$n: No such attribute"
		done
	done
	[ "$(sh_xattr version "$A/k")" = 1 ]
	# a staged value has no version yet
	run getfattr -n user.statehouse.version "$T/ns/a/k"
	assert_output --partial 'No such attribute'
}

@test "setting an extended attribute on a key fails with ENOTSUP" {
	echo v >"$A/k"
	run sh_errno setxattr "$A/k" user.statehouse.version
	assert_output ENOTSUP
	run sh_errno setxattr "$A/k" user.mine
	assert_output ENOTSUP
	[ "$(sh_xattr version "$A/k")" = 1 ]
}

@test "touch on a new key commits an empty value" {
	ts0="$(sh_probe_ts)"
	touch "$A/new"
	[ -f "$A/new" ]
	[ "$(stat -c %s "$A/new")" -eq 0 ]
	[ "$(sh_xattr version "$A/new")" = 1 ]
	[ "$(sh_xattr commit_ts "$A/new")" = $((ts0 + 1)) ]
}

@test "touch on an existing key commits nothing and leaves value, version and mtime alone" {
	echo keep >"$A/k"
	mtime0="$(stat -c %Y "$A/k")"
	ts0="$(sh_probe_ts)"
	touch "$A/k"
	touch -d '2001-02-03 04:05:06' "$A/k"
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
	run cat "$A/k"
	assert_output keep
	[ "$(sh_xattr version "$A/k")" = 1 ]
	[ "$(stat -c %Y "$A/k")" -eq "$mtime0" ]
}

# A truncate without a write commits when the kernel releases the file, which it does
# just after close() returns (README, Limits): wait for that commit, then check it.
key_version_is() { [ "$(sh_xattr version "$1")" = "$2" ]; }

@test ": > KEY commits an empty value as a new version" {
	echo something >"$A/k"
	ts0="$(sh_probe_ts)"
	: > "$A/k"
	sh_wait_until 10 key_version_is "$A/k" 2
	[ "$(stat -c %s "$A/k")" -eq 0 ]
	run cat "$A/k"
	assert_output ''
	[ "$(sh_xattr version "$A/k")" = 2 ]
	[ "$(sh_xattr commit_ts "$A/k")" = $((ts0 + 1)) ]
}

@test "an open with no write commits nothing" {
	echo keep >"$A/k"
	ts0="$(sh_probe_ts)"
	cat "$A/k" >/dev/null
	exec {fd}>>"$A/k"
	exec {fd}>&-
	exec {fd}<>"$A/k"
	exec {fd}>&-
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
	[ "$(sh_xattr version "$A/k")" = 1 ]
	run cat "$A/k"
	assert_output keep
}

@test "a key keeps its agent's owner: chown to another is EPERM, to the same and utimens change nothing" {
	echo keep >"$A/k"
	mode0="$(stat -c %a "$A/k")"
	mtime0="$(stat -c %Y "$A/k")"
	ts0="$(sh_probe_ts)"
	run sh_errno chown "$A/k" 12345:12345
	assert_output EPERM
	chmod "$mode0" "$A/k"           # what it already has: accepted, nothing committed
	chown "$(id -u):$(id -g)" "$A/k"
	touch -m -d @1000000000 "$A/k"
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
	[ "$(stat -c %a "$A/k")" = "$mode0" ]
	[ "$(stat -c %Y "$A/k")" -eq "$mtime0" ]
	[ "$(sh_xattr version "$A/k")" = 1 ]
}

@test "rm deletes a key: it is absent from ls and cat fails with ENOENT" {
	echo v >"$A/k"
	echo w >"$A/other"
	ts0="$(sh_probe_ts)"
	rm "$A/k"
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 2)) ]
	run ls "$A"
	assert_output other
	run cat "$A/k"
	assert_failure
	assert_output --partial 'No such file or directory'
	run sh_errno read "$A/k"
	assert_output ENOENT
}

@test "a key rewritten after a delete continues its version: write 1, delete 2, write 3" {
	echo v1 >"$A/k"
	rm "$A/k"
	echo v3 >"$A/k"
	[ "$(sh_xattr version "$A/k")" = 3 ]
}

@test "rm -r removes every key below a directory" {
	mkdir -p "$A/dir/sub"
	echo 1 >"$A/dir/x"
	echo 2 >"$A/dir/sub/y"
	echo 3 >"$A/keep"
	rm -r "$A/dir"
	run ls "$A"
	assert_output keep
	run sh_errno stat "$A/dir/sub/y"
	assert_output ENOENT
	run sh_errno stat "$A/dir"
	assert_output ENOENT
}

@test "rmdir removes an empty directory made by mkdir" {
	mkdir -p "$A/empty"
	rmdir "$A/empty"
	run sh_errno stat "$A/empty"
	assert_output ENOENT
}

@test "mv a b within the live tree is one commit: a is deleted and b written" {
	echo payload >"$A/a"
	ts0="$(sh_probe_ts)"
	mv "$A/a" "$A/b"
	run cat "$A/b"
	assert_output payload
	run sh_errno stat "$A/a"
	assert_output ENOENT
	[ "$(sh_xattr commit_ts "$A/b")" = $((ts0 + 1)) ]
	[ "$(sh_xattr version "$A/b")" = 1 ]
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 2)) ]
	# a's delete was a committed version of a: writing a again gives version 3
	echo again >"$A/a"
	[ "$(sh_xattr version "$A/a")" = 3 ]
}

@test "mv moves a key to another agent and namespace" {
	mkdir -p "$MNT/ns2/b"
	echo payload >"$A/k"
	mv "$A/k" "$MNT/ns2/b/k2"
	run cat "$MNT/ns2/b/k2"
	assert_output payload
	run sh_errno stat "$A/k"
	assert_output ENOENT
}

@test "renaming a file over an existing key replaces it atomically in one commit" {
	echo old >"$A/target"
	echo new >"$A/tmp"
	ts0="$(sh_probe_ts)"
	mv "$A/tmp" "$A/target"
	run cat "$A/target"
	assert_output new
	run ls "$A"
	assert_output target
	[ "$(sh_xattr version "$A/target")" = 2 ]
	[ "$(sh_xattr commit_ts "$A/target")" = $((ts0 + 1)) ]
}

@test "sed -i edits a key in place and leaves no temporary key behind" {
	echo 'hello world' >"$A/k"
	sed -i 's/world/there/' "$A/k"
	run cat "$A/k"
	assert_output 'hello there'
	run ls -A "$A"
	assert_output k
	[ "$(sh_xattr version "$A/k")" = 2 ]
}

@test "renaming a directory moves every key below it in one commit" {
	mkdir -p "$A/dir/sub"
	echo 1 >"$A/dir/x"
	echo 2 >"$A/dir/sub/y"
	ts0="$(sh_probe_ts)"
	mv "$A/dir" "$A/moved"
	run cat "$A/moved/x"
	assert_output 1
	run cat "$A/moved/sub/y"
	assert_output 2
	run sh_errno stat "$A/dir"
	assert_output ENOENT
	run ls "$A"
	assert_output moved
	[ "$(sh_xattr commit_ts "$A/moved/x")" = $((ts0 + 1)) ]
	[ "$(sh_xattr commit_ts "$A/moved/sub/y")" = $((ts0 + 1)) ]
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 2)) ]
}

@test "a key whose name begins with . below an agent is an ordinary key" {
	echo secret >"$A/.env"
	run cat "$A/.env"
	assert_output secret
	run ls -A "$A"
	assert_output .env
}

@test "ls lists namespaces at the root, agents in a namespace and keys of an agent" {
	mkdir -p "$MNT/ns/b" "$MNT/other/x"
	echo 1 >"$A/k1"
	echo 2 >"$A/k2"
	echo 3 >"$MNT/ns/b/k"
	echo 4 >"$MNT/other/x/k"
	run ls "$MNT"
	assert_output "$(printf 'ns\nother')"
	run ls "$MNT/ns"
	assert_output "$(printf 'a\nb')"
	run ls "$A"
	assert_output "$(printf 'k1\nk2')"
}

@test "a second process reads a new value right after the writer's commit" {
	echo v1 >"$A/k"
	[ "$(cat "$A/k")" = v1 ]
	for i in 2 3 4 5; do
		echo "v$i" >"$A/k"
		run cat "$A/k"
		assert_output "v$i"
		[ "$(stat -c %s "$A/k")" -eq 3 ]
	done
}

@test ".health reads ok and .version reads JSON with version, schema, sqlite and libfuse" {
	run cat "$MNT/.health"
	assert_success
	assert_output ok
	[ "$(cat "$MNT/.health"; echo .)" = "$(printf 'ok\n.')" ]
	sh_jq 'has("version") and has("schema") and has("sqlite") and has("libfuse")' "$MNT/.version"
}

@test "values and versions survive an unmount and a new mount of the same data dir" {
	echo v1 >"$A/k"
	echo v2 >"$A/k"
	printf 'x\0y' >"$A/bin"
	ts0="$(sh_probe_ts)"
	sh_remount
	run cat "$A/k"
	assert_output v2
	cmp <(printf 'x\0y') "$A/bin"
	[ "$(sh_xattr version "$A/k")" = 2 ]
	echo v3 >"$A/k"
	[ "$(sh_xattr version "$A/k")" = 3 ]
	[ "$(sh_xattr commit_ts "$A/k")" = $((ts0 + 1)) ]
}

@test "statehoused -d serves the same tree and logs each FUSE request" {
	echo before >"$A/k"
	sh_remount -d
	run cat "$A/k"
	assert_output before
	echo after >"$A/k"
	run cat "$A/k"
	assert_output after
	grep -q 'opcode: LOOKUP' "$LOG"
}
