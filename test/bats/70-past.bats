#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The past as files: .at/<commit_ts>/<ns>/<agent>/<key> (the whole state as of a commit)
# and .history/<ns>/<agent>/<ekey>/ (every version of a key, and index.jsonl).
# The past as files: ".at", ".history", "the past is immutable" and "Errors".

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

# past_dump DIR: one line per entry below DIR, sorted: "d ./path" for a directory,
# "f ./path size mtime sha256" for a file. Two equal dumps mean the same bytes and times.
# index.jsonl has no specified mtime (the daemon serves its start time), so its mtime is
# left out.
past_dump() {
	local dir=$1 f
	(cd "$dir" && find . -print | LC_ALL=C sort) |
		while read -r f; do
			if [ -d "$dir/$f" ]; then
				printf 'd %s\n' "$f"
			elif [ "${f##*/}" = index.jsonl ]; then
				printf 'f %s %s - %s\n' "$f" "$(stat -c %s "$dir/$f")" \
					"$(sha256sum <"$dir/$f" | cut -d' ' -f1)"
			else
				printf 'f %s %s %s\n' "$f" "$(stat -c '%s %.9Y' "$dir/$f")" \
					"$(sha256sum <"$dir/$f" | cut -d' ' -f1)"
			fi
		done
}

# in_mnt CMD...: run CMD in $MNT, in a subshell (a test's own cwd in the mount would keep
# the unmount in teardown from finishing).
in_mnt() {
	(cd "$MNT" && "$@")
}

# rfc3339_to_us TIME: seconds.microseconds since the epoch, as stat -c %.6Y prints an mtime.
rfc3339_to_us() {
	date -u -d "$1" +%s.%6N
}

RFC3339_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|\\+00:00)$'

# --- .at/<commit_ts> ---------------------------------------------------------------------

@test ".at/T/ns/agent/key reads the value the key had as of commit T, and the head T reads the live value" {
	echo v1 >"$A/k"
	t1="$(sh_xattr commit_ts "$A/k")"
	echo v2 >"$A/k"
	t2="$(sh_xattr commit_ts "$A/k")"
	echo other >"$A/o"
	t3="$(sh_xattr commit_ts "$A/o")"
	echo v4 >"$A/k"
	t4="$(sh_xattr commit_ts "$A/k")"
	[ "$t2" -eq $((t1 + 1)) ]
	[ "$t3" -eq $((t1 + 2)) ]
	[ "$t4" -eq $((t1 + 3)) ]
	run cat "$MNT/.at/$t1/ns/a/k"
	assert_output v1
	run cat "$MNT/.at/$t2/ns/a/k"
	assert_output v2
	run cat "$MNT/.at/$t3/ns/a/k"
	assert_output v2
	run cat "$MNT/.at/$t4/ns/a/k"
	assert_output v4
	run sh_errno stat "$MNT/.at/$t1/ns/a/o"
	assert_output ENOENT
	run cat "$MNT/.at/$t3/ns/a/o"
	assert_output other
	run ls "$MNT/.at/$t1/ns/a"
	assert_output k
	run ls "$MNT/.at/$t4/ns/a"
	assert_output "$(printf 'k\no')"
	[ -d "$MNT/.at/$t1" ]
	[ -f "$MNT/.at/$t1/ns/a/k" ]
	[ "$(stat -c %s "$MNT/.at/$t1/ns/a/k")" -eq 3 ]
	# the head snapshot and the live tree hold the same keys and bytes
	run diff -r "$MNT/.at/$t4/ns/a" "$A"
	assert_success
	assert_output ''
}

@test "values under .at and .history are byte-exact: NUL bytes, no final newline, empty, 300 KiB" {
	printf 'a\0b\nc\377\0\0end' >"$SH_TMP/nul"
	printf 'no newline' >"$SH_TMP/plain"
	head -c 300000 /dev/urandom >"$SH_TMP/big"
	cp "$SH_TMP/nul" "$A/nul"
	cp "$SH_TMP/plain" "$A/plain"
	cp "$SH_TMP/big" "$A/big"
	: >"$A/empty"
	sh_wait_until 10 test -e "$A/empty"
	ts="$(sh_xattr commit_ts "$A/empty")"
	for k in nul plain big; do
		cmp "$SH_TMP/$k" "$MNT/.at/$ts/ns/a/$k"
		cmp "$SH_TMP/$k" "$MNT/.history/ns/a/$k/1"
		[ "$(stat -c %s "$MNT/.at/$ts/ns/a/$k")" -eq "$(stat -c %s "$SH_TMP/$k")" ]
		[ "$(stat -c %s "$MNT/.history/ns/a/$k/1")" -eq "$(stat -c %s "$SH_TMP/$k")" ]
	done
	[ "$(stat -c %s "$SH_TMP/nul")" -eq 11 ]
	cmp /dev/null "$MNT/.at/$ts/ns/a/empty"
	cmp /dev/null "$MNT/.history/ns/a/empty/1"
	[ "$(stat -c %s "$MNT/.at/$ts/ns/a/empty")" -eq 0 ]
	# a later overwrite keeps the old bytes exact at the old commit_ts
	printf 'x\0y' >"$A/nul"
	cmp "$SH_TMP/nul" "$MNT/.at/$ts/ns/a/nul"
	cmp <(printf 'x\0y') "$MNT/.at/$(sh_xattr commit_ts "$A/nul")/ns/a/nul"
	cmp <(printf 'x\0y') "$MNT/.history/ns/a/nul/2"
}

@test "diff -r of .at/A and .at/B for one agent shows exactly the change between the two commits" {
	mkdir -p "$A/sub"
	echo same >"$A/same"
	echo old >"$A/changed"
	echo deep-old >"$A/sub/deep"
	echo doomed >"$A/removed"
	a="$(sh_xattr commit_ts "$A/removed")"
	T="$MNT/.tx/change"
	mkdir "$T"
	echo new >"$T/ns/a/changed"
	echo deep-new >"$T/ns/a/sub/deep"
	rm "$T/ns/a/removed"
	echo born >"$T/ns/a/added"
	sh_commit "$T"
	b="$(jq -r .commit_ts "$T/.commit")"
	[ "$b" -eq $((a + 1)) ]
	# a later commit to another agent changes nothing for ns/a
	mkdir -p "$MNT/ns/b"
	echo b >"$MNT/ns/b/x"
	c="$(sh_xattr commit_ts "$MNT/ns/b/x")"
	run in_mnt diff -r ".at/$a/ns/a" ".at/$b/ns/a"
	[ "$status" -eq 1 ]
	assert_output "$(
		cat <<-EOF
			Only in .at/$b/ns/a: added
			diff -r .at/$a/ns/a/changed .at/$b/ns/a/changed
			1c1
			< old
			---
			> new
			Only in .at/$a/ns/a: removed
			diff -r .at/$a/ns/a/sub/deep .at/$b/ns/a/sub/deep
			1c1
			< deep-old
			---
			> deep-new
		EOF
	)"
	run in_mnt diff -r ".at/$b/ns/a" ".at/$c/ns/a"
	assert_success
	assert_output ''
	run in_mnt diff -r ".at/$b/ns" ".at/$c/ns"
	[ "$status" -eq 1 ]
	assert_output "Only in .at/$c/ns: b"
}

@test ".at/T beyond the head and .at/0 give ENOENT, and the next commit makes the former beyond-head T appear" {
	echo v >"$A/k"
	h="$(sh_xattr commit_ts "$A/k")"
	run sh_errno stat "$MNT/.at/0"
	assert_output ENOENT
	run sh_errno stat "$MNT/.at/$((h + 1))"
	assert_output ENOENT
	run sh_errno stat "$MNT/.at/$((h + 1))/ns/a/k"
	assert_output ENOENT
	run sh_errno read "$MNT/.at/$((h + 2))/ns/a/k"
	assert_output ENOENT
	run sh_errno stat "$MNT/.at/$((h + 1000))"
	assert_output ENOENT
	run sh_errno stat "$MNT/.at/$h"
	assert_output OK
	# a commit_ts looked up (and refused) before it existed is served once committed
	echo w >"$A/k"
	[ "$(sh_xattr commit_ts "$A/k")" -eq $((h + 1)) ]
	run cat "$MNT/.at/$((h + 1))/ns/a/k"
	assert_output w
	run cat "$MNT/.at/$h/ns/a/k"
	assert_output v
	run sh_errno stat "$MNT/.at/$((h + 2))"
	assert_output ENOENT
	run sh_errno stat "$MNT/.at/0"
	assert_output ENOENT
}

@test "a malformed commit_ts under .at gives EINVAL" {
	echo v >"$A/k"
	for t in x1 01 -1 00 1x +1 0x1 1.0 ' 1'; do
		run sh_errno stat "$MNT/.at/$t"
		assert_output EINVAL
	done
	run sh_errno read "$MNT/.at/x1/ns/a/k"
	assert_output EINVAL
	run sh_errno stat "$MNT/.at/01/ns/a/k"
	assert_output EINVAL
	run sh_errno stat "$MNT/.at/-1/ns"
	assert_output EINVAL
}

@test "ls .at lists nothing, yet every commit_ts from 1 to the head is reachable by name" {
	for i in 1 2 3 4 5; do echo "$i" >"$A/k$i"; done
	rm "$A/k2"
	h="$(sh_probe_ts)"
	run ls -A "$MNT/.at"
	assert_success
	assert_output ''
	for ((t = 1; t <= h; t++)); do
		[ -d "$MNT/.at/$t" ]
	done
	run sh_errno stat "$MNT/.at/$((h + 1))"
	assert_output ENOENT
	run ls -A "$MNT/.at"
	assert_output ''
}

@test "namespaces and agents under .at/T are implicit directories, and ls lists those that held keys at T" {
	echo x >"$A/x"
	t1="$(sh_xattr commit_ts "$A/x")"
	mkdir -p "$MNT/ns2/b"
	echo y >"$MNT/ns2/b/y"
	t2="$(sh_xattr commit_ts "$MNT/ns2/b/y")"
	# any name resolves as a directory at the ns and agent levels, and lists empty
	[ -d "$MNT/.at/$t1/nowhere" ]
	[ -d "$MNT/.at/$t1/nowhere/nobody" ]
	[ -d "$MNT/.at/$t1/ns2/b" ]
	run ls -A "$MNT/.at/$t1/nowhere/nobody"
	assert_output ''
	run ls -A "$MNT/.at/$t1/ns2/b"
	assert_output ''
	run ls -A "$MNT/.at/$t1/ns/nobody"
	assert_output ''
	# a key below them does not exist
	run sh_errno stat "$MNT/.at/$t1/nowhere/nobody/k"
	assert_output ENOENT
	run sh_errno stat "$MNT/.at/$t1/ns2/b/y"
	assert_output ENOENT
	# listings show what held keys as of T
	run ls -A "$MNT/.at/$t1"
	assert_output ns
	run ls -A "$MNT/.at/$t1/ns"
	assert_output a
	run ls -A "$MNT/.at/$t2"
	assert_output "$(printf 'ns\nns2')"
	run ls -A "$MNT/.at/$t2/ns2"
	assert_output b
	run cat "$MNT/.at/$t2/ns2/b/y"
	assert_output y
}

@test ".at across deletes and re-creates of a key shows it present, absent and present again with each value" {
	ts0="$(sh_probe_ts)"
	echo v1 >"$A/k"                                           # ts0+1, version 1
	rm "$A/k"                                                 # ts0+2, version 2 (delete)
	echo v3 >"$A/k"                                           # ts0+3, version 3
	T="$MNT/.tx/del"
	mkdir "$T"
	rm "$T/ns/a/k"
	sh_commit "$T"                                            # ts0+4, version 4 (delete)
	T="$MNT/.tx/re"
	mkdir "$T"
	echo v5 >"$T/ns/a/k"
	sh_commit "$T"                                            # ts0+5, version 5
	[ "$(jq -r .commit_ts "$T/.commit")" -eq $((ts0 + 5)) ]
	[ "$(sh_xattr version "$A/k")" -eq 5 ]
	run sh_errno stat "$MNT/.at/$ts0/ns/a/k"
	assert_output ENOENT
	run cat "$MNT/.at/$((ts0 + 1))/ns/a/k"
	assert_output v1
	run sh_errno read "$MNT/.at/$((ts0 + 2))/ns/a/k"
	assert_output ENOENT
	run ls -A "$MNT/.at/$((ts0 + 2))/ns/a"
	assert_output ''
	run cat "$MNT/.at/$((ts0 + 3))/ns/a/k"
	assert_output v3
	run sh_errno stat "$MNT/.at/$((ts0 + 4))/ns/a/k"
	assert_output ENOENT
	run ls -A "$MNT/.at/$((ts0 + 4))/ns/a"
	assert_output ''
	run cat "$MNT/.at/$((ts0 + 5))/ns/a/k"
	assert_output v5
	run ls "$MNT/.history/ns/a/k"
	assert_output "$(printf '1\n2.deleted\n3\n4.deleted\n5\nindex.jsonl')"
	run cat "$MNT/.history/ns/a/k/3"
	assert_output v3
	sh_jq "[., inputs] | map(.op) == [\"put\",\"delete\",\"put\",\"delete\",\"put\"]" "$MNT/.history/ns/a/k/index.jsonl"
	sh_jq "[., inputs] | map(.commit_ts) == [$((ts0 + 1)),$((ts0 + 2)),$((ts0 + 3)),$((ts0 + 4)),$((ts0 + 5))]" "$MNT/.history/ns/a/k/index.jsonl"
}

@test "a key that was a leaf and then a prefix is a file in .at before and a directory after" {
	echo leaf >"$A/k"
	t1="$(sh_xattr commit_ts "$A/k")"
	rm "$A/k"
	t2=$(($(sh_probe_ts) - 1))
	[ "$t2" -eq $((t1 + 1)) ]
	mkdir "$A/k"
	echo sub >"$A/k/sub"
	t3="$(sh_xattr commit_ts "$A/k/sub")"
	# the probe, the mkdir (a directory is state, one commit), the put
	[ "$t3" -eq $((t2 + 3)) ]
	[ -d "$MNT/.at/$((t2 + 2))/ns/a/k" ]
	# at t1: k is a file
	[ -f "$MNT/.at/$t1/ns/a/k" ]
	run cat "$MNT/.at/$t1/ns/a/k"
	assert_output leaf
	run sh_errno stat "$MNT/.at/$t1/ns/a/k/sub"
	assert_output ENOTDIR
	# at t2: no k at all
	run sh_errno stat "$MNT/.at/$t2/ns/a/k"
	assert_output ENOENT
	# at t3: k is a directory holding sub
	[ -d "$MNT/.at/$t3/ns/a/k" ]
	run sh_errno read "$MNT/.at/$t3/ns/a/k"
	assert_output EISDIR
	run ls -A "$MNT/.at/$t3/ns/a/k"
	assert_output sub
	run cat "$MNT/.at/$t3/ns/a/k/sub"
	assert_output sub
	# .history: two entries, one per key name
	run ls "$MNT/.history/ns/a"
	assert_output "$(printf 'k\nk%%2Fsub')"
	run ls "$MNT/.history/ns/a/k"
	assert_output "$(printf '1\n2.deleted\nindex.jsonl')"
	run ls "$MNT/.history/ns/a/k%2Fsub"
	assert_output "$(printf '1\nindex.jsonl')"
	run cat "$MNT/.history/ns/a/k/1"
	assert_output leaf
	run cat "$MNT/.history/ns/a/k%2Fsub/1"
	assert_output sub
	sh_jq "[., inputs] | length == 2 and .[0].commit_ts == $t1 and .[0].op == \"put\" and .[1].commit_ts == $t2 and .[1].op == \"delete\"" "$MNT/.history/ns/a/k/index.jsonl"
	sh_jq "[., inputs] | length == 1 and .[0].version == 1 and .[0].commit_ts == $t3 and .[0].op == \"put\" and .[0].size == 4" "$MNT/.history/ns/a/k%2Fsub/index.jsonl"
}

@test "a key that was a prefix and then a leaf again is a directory in .at before and a file after" {
	mkdir "$A/k"
	echo sub >"$A/k/sub"
	t1="$(sh_xattr commit_ts "$A/k/sub")"
	rm -r "$A/k"
	echo leaf >"$A/k"
	t3="$(sh_xattr commit_ts "$A/k")"
	# the delete of sub, the rmdir of k (a directory is state, one commit), the put
	[ "$t3" -eq $((t1 + 3)) ]
	run cat "$MNT/.at/$t1/ns/a/k/sub"
	assert_output sub
	run ls -A "$MNT/.at/$((t1 + 1))/ns/a/k"
	assert_success
	assert_output ""
	run sh_errno stat "$MNT/.at/$((t1 + 2))/ns/a/k"
	assert_output ENOENT
	[ -f "$MNT/.at/$t3/ns/a/k" ]
	run cat "$MNT/.at/$t3/ns/a/k"
	assert_output leaf
	run sh_errno stat "$MNT/.at/$t3/ns/a/k/sub"
	assert_output ENOTDIR
	[ -d "$MNT/.at/$t1/ns/a/k" ]
	run ls "$MNT/.history/ns/a"
	assert_output "$(printf 'k\nk%%2Fsub')"
	run ls "$MNT/.history/ns/a/k%2Fsub"
	assert_output "$(printf '1\n2.deleted\nindex.jsonl')"
	run ls "$MNT/.history/ns/a/k"
	assert_output "$(printf '1\nindex.jsonl')"
	sh_jq ".version == 1 and .commit_ts == $t3 and .op == \"put\"" "$MNT/.history/ns/a/k/index.jsonl"
}

@test "a multi-key transaction's keys appear together at its commit_ts and not at commit_ts-1" {
	mkdir -p "$MNT/ns/b"
	echo a0 >"$A/x"
	echo b0 >"$MNT/ns/b/y"
	echo gone >"$A/gone"
	T="$MNT/.tx/multi"
	mkdir "$T"
	echo a1 >"$T/ns/a/x"
	echo b1 >"$T/ns/b/y"
	mkdir -p "$T/ns2/c/step"
	echo z >"$T/ns2/c/step/z"
	rm "$T/ns/a/gone"
	sh_commit "$T"
	c="$(jq -r .commit_ts "$T/.commit")"
	# commit_ts-1: none of it
	p=$((c - 1))
	run cat "$MNT/.at/$p/ns/a/x"
	assert_output a0
	run cat "$MNT/.at/$p/ns/b/y"
	assert_output b0
	run cat "$MNT/.at/$p/ns/a/gone"
	assert_output gone
	run sh_errno stat "$MNT/.at/$p/ns2/c/step"
	assert_output ENOENT
	run ls -A "$MNT/.at/$p"
	assert_output ns
	# commit_ts: all of it
	run cat "$MNT/.at/$c/ns/a/x"
	assert_output a1
	run cat "$MNT/.at/$c/ns/b/y"
	assert_output b1
	run cat "$MNT/.at/$c/ns2/c/step/z"
	assert_output z
	run sh_errno stat "$MNT/.at/$c/ns/a/gone"
	assert_output ENOENT
	run ls -A "$MNT/.at/$c"
	assert_output "$(printf 'ns\nns2')"
	run ls -A "$MNT/.at/$c/ns/a"
	assert_output x
	# and each key's newest version carries that commit_ts and the transaction's name
	for e in ns/a/x ns/b/y ns2/c/step%2Fz ns/a/gone; do
		run tail -n 1 "$MNT/.history/$e/index.jsonl"
		assert_success
		jq -e ".commit_ts == $c and .txn == \"multi\"" <<<"$output"
	done
}

@test "a live mv shows the old name until the commit_ts before it and the new name from its commit_ts" {
	echo payload >"$A/from"
	t1="$(sh_xattr commit_ts "$A/from")"
	mv "$A/from" "$A/to"
	t2="$(sh_xattr commit_ts "$A/to")"
	[ "$t2" -eq $((t1 + 1)) ]
	run ls "$MNT/.at/$t1/ns/a"
	assert_output from
	run ls "$MNT/.at/$t2/ns/a"
	assert_output to
	run cat "$MNT/.at/$t2/ns/a/to"
	assert_output payload
	sh_jq "[., inputs] | length == 2 and .[1].op == \"delete\" and .[1].commit_ts == $t2" "$MNT/.history/ns/a/from/index.jsonl"
	sh_jq "[., inputs] | length == 1 and .[0].op == \"put\" and .[0].commit_ts == $t2 and .[0].size == 8" "$MNT/.history/ns/a/to/index.jsonl"
}

@test "mtimes of .at files and .history version files are the commit time of their version" {
	echo v1 >"$A/k"
	t1="$(sh_xattr commit_ts "$A/k")"
	m1="$(stat -c %.9Y "$A/k")"
	echo other >"$A/o"
	t2="$(sh_xattr commit_ts "$A/o")"
	T="$MNT/.tx/timed"
	mkdir "$T"
	echo v2 >"$T/ns/a/k"
	sh_commit "$T"
	c="$(jq -r .commit_ts "$T/.commit")"
	ctime="$(jq -r .time "$T/.commit")"
	m2="$(stat -c %.9Y "$A/k")"
	# .at/T/k carries the time of the version visible at T, at every T it is visible
	[ "$(stat -c %.9Y "$MNT/.at/$t1/ns/a/k")" = "$m1" ]
	[ "$(stat -c %.9Y "$MNT/.at/$t2/ns/a/k")" = "$m1" ]
	[ "$(stat -c %.9Y "$MNT/.at/$c/ns/a/k")" = "$m2" ]
	[ "$(stat -c %.9Y "$MNT/.history/ns/a/k/1")" = "$m1" ]
	[ "$(stat -c %.9Y "$MNT/.history/ns/a/k/2")" = "$m2" ]
	# and that time is the commit's time as .commit and index.jsonl print it
	[ "$(stat -c %.6Y "$MNT/.at/$c/ns/a/k")" = "$(rfc3339_to_us "$ctime")" ]
	[ "$(stat -c %Y "$MNT/.at/$c/ns/a/k")" -eq "$(date -d "$ctime" +%s)" ]
	t1time="$(head -n 1 "$MNT/.history/ns/a/k/index.jsonl" | jq -r .time)"
	[ "$(stat -c %.6Y "$MNT/.at/$t1/ns/a/k")" = "$(rfc3339_to_us "$t1time")" ]
	# a delete version's file carries the delete's commit time
	rm "$A/k"
	dtime="$(tail -n 1 "$MNT/.history/ns/a/k/index.jsonl" | jq -r .time)"
	[ "$(stat -c %.6Y "$MNT/.history/ns/a/k/3.deleted")" = "$(rfc3339_to_us "$dtime")" ]
}

# --- read-only ---------------------------------------------------------------------------

@test "everything under .at is read-only: create, write, mkdir, rmdir, unlink and rename give EROFS" {
	mkdir -p "$A/d"
	echo v >"$A/k"
	echo w >"$A/d/w"
	t="$(sh_xattr commit_ts "$A/d/w")"
	P="$MNT/.at/$t"
	before="$(past_dump "$P")"
	ts0="$(sh_probe_ts)"
	run sh_errno create "$P/ns/a/new"
	assert_output EROFS
	run sh_errno write "$P/ns/a/new" x
	assert_output EROFS
	run sh_errno write "$P/ns/a/k" x
	assert_output EROFS
	run sh_errno writen "$P/ns/a/d/w" 10
	assert_output EROFS
	run sh_errno mkdir "$P/ns/a/newdir"
	assert_output EROFS
	run sh_errno mkdir "$P/ns/a/d/deeper"
	assert_output EROFS
	run sh_errno mkdir "$MNT/.at/$((ts0 + 5))"
	assert_output EROFS
	run sh_errno rmdir "$P/ns/a/d"
	assert_output EROFS
	run sh_errno rmdir "$P/ns/a"
	assert_output EROFS
	run sh_errno rmdir "$P/ns"
	assert_output EROFS
	run sh_errno rmdir "$P"
	assert_output EROFS
	run sh_errno unlink "$P/ns/a/k"
	assert_output EROFS
	run sh_errno unlink "$P/ns/a/d/w"
	assert_output EROFS
	run sh_errno rename "$P/ns/a/k" "$P/ns/a/k2"
	assert_output EROFS
	run sh_errno rename "$P/ns/a/k" "$P/ns/a/d/w"
	assert_output EROFS
	run sh_errno rename "$P/ns/a/d" "$P/ns/a/e"
	assert_output EROFS
	run sh_errno rename "$P/ns/a/k" "$MNT/.at/$((t - 1))/ns/a/k"
	assert_output EROFS
	run sh_errno rename "$P/ns/a/k" "$A/moved"
	assert_output EROFS
	run sh_errno rename "$A/k" "$P/ns/a/k3"
	assert_output EROFS
	run truncate -s 0 "$P/ns/a/k"
	assert_failure
	assert_output "truncate: cannot open '$P/ns/a/k' for writing: Read-only file system"
	# nothing was committed and nothing changed, there or in the live tree
	[ "$(sh_probe_ts)" -eq $((ts0 + 1)) ]
	[ "$(past_dump "$P")" = "$before" ]
	run cat "$A/k"
	assert_output v
	run sh_errno stat "$A/moved"
	assert_output ENOENT
	run ls "$A"
	assert_output "$(printf 'd\nk')"
}

@test "everything under .history is read-only: create, write, mkdir, rmdir, unlink and rename give EROFS" {
	echo v1 >"$A/k"
	rm "$A/k"
	echo v3 >"$A/k"
	H="$MNT/.history/ns/a"
	before="$(past_dump "$H")"
	ts0="$(sh_probe_ts)"
	run sh_errno create "$H/k/4"
	assert_output EROFS
	run sh_errno create "$H/new"
	assert_output EROFS
	run sh_errno create "$MNT/.history/new"
	assert_output EROFS
	run sh_errno write "$H/k/1" x
	assert_output EROFS
	run sh_errno write "$H/k/2.deleted" x
	assert_output EROFS
	run sh_errno write "$H/k/index.jsonl" x
	assert_output EROFS
	run sh_errno mkdir "$H/newdir"
	assert_output EROFS
	run sh_errno mkdir "$H/k/newdir"
	assert_output EROFS
	run sh_errno mkdir "$MNT/.history/newns"
	assert_output EROFS
	run sh_errno rmdir "$H/k"
	assert_output EROFS
	run sh_errno rmdir "$H"
	assert_output EROFS
	run sh_errno rmdir "$MNT/.history/ns"
	assert_output EROFS
	run sh_errno unlink "$H/k/1"
	assert_output EROFS
	run sh_errno unlink "$H/k/2.deleted"
	assert_output EROFS
	run sh_errno unlink "$H/k/index.jsonl"
	assert_output EROFS
	run sh_errno rename "$H/k/1" "$H/k/9"
	assert_output EROFS
	run sh_errno rename "$H/k" "$H/j"
	assert_output EROFS
	run sh_errno rename "$H/k/3" "$A/from-history"
	assert_output EROFS
	run sh_errno rename "$A/k" "$H/k/4"
	assert_output EROFS
	run truncate -s 0 "$H/k/index.jsonl"
	assert_failure
	assert_output "truncate: cannot open '$H/k/index.jsonl' for writing: Read-only file system"
	[ "$(sh_probe_ts)" -eq $((ts0 + 1)) ]
	[ "$(past_dump "$H")" = "$before" ]
	run cat "$A/k"
	assert_output v3
}

@test "chmod, touch and an O_TRUNC open on .at and .history files change neither their bytes, mode nor mtime" {
	printf 'keep\0me' >"$A/k"
	t="$(sh_xattr commit_ts "$A/k")"
	for f in "$MNT/.at/$t/ns/a/k" "$MNT/.history/ns/a/k/1" "$MNT/.history/ns/a/k/index.jsonl"; do
		before="$(stat -c '%A %s %.9Y' "$f"; sha256sum <"$f")"
		chmod 666 "$f" 2>/dev/null || true
		touch -d @0 "$f" 2>/dev/null || true
		"$SH_PYTHON" -c 'import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_TRUNC))
except OSError:
    pass' "$f"
		[ "$(stat -c '%A %s %.9Y' "$f"; sha256sum <"$f")" = "$before" ]
	done
	cmp <(printf 'keep\0me') "$MNT/.at/$t/ns/a/k"
	cmp <(printf 'keep\0me') "$MNT/.history/ns/a/k/1"
}

# --- .history ----------------------------------------------------------------------------

@test ".history/ns/agent lists every key that ever existed once, with % written as %25 and / as %2F" {
	mkdir -p "$A/dir" "$A/p%"
	echo 1 >"$A/plain"
	echo 2 >"$A/50%off"
	echo 3 >"$A/dir/x"
	echo 4 >"$A/p%/q"
	echo 5 >"$A/gone"
	echo 6 >"$A/gone"
	rm "$A/gone"
	run ls -A "$MNT/.history/ns/a"
	assert_output "$(printf '%s\n' '50%25off' 'dir%2Fx' 'gone' 'p%25%2Fq' 'plain')"
	run cat "$MNT/.history/ns/a/50%25off/1"
	assert_output 2
	run cat "$MNT/.history/ns/a/dir%2Fx/1"
	assert_output 3
	run cat "$MNT/.history/ns/a/p%25%2Fq/1"
	assert_output 4
	run ls "$MNT/.history/ns/a/gone"
	assert_output "$(printf '1\n2\n3.deleted\nindex.jsonl')"
	# the live names are not history names
	run sh_errno stat "$MNT/.history/ns/a/dir"
	assert_output ENOENT
	run sh_errno stat "$MNT/.history/ns/a/p%25"
	assert_output ENOENT
	run ls -A "$MNT/.history"
	assert_output ns
	run ls -A "$MNT/.history/ns"
	assert_output a
}

@test "a key of 1024 bytes holding / has its whole history below segment directories" {
	L=sh_longname
	key="$($L 200 a)/$($L 100 %)/$($L 240 x)/$($L 240 y)/$($L 240 z)"
	[ "${#key}" -eq 1024 ]
	mkdir -p "$A/${key%/*}"
	echo v1 >"$A/$key"
	echo v2 >"$A/$key"
	rm "$A/$key"
	# Its encoded name is 1232 bytes: segments of at most 253 bytes and "%+", none cut
	# inside an escape, then the last 223 bytes.
	s1="$($L 200 a)%2F$(for i in $(seq 16); do printf %%25; done)"
	s2="$(for i in $(seq 84); do printf %%25; done)"
	s3="%2F$($L 240 x)%2F$($L 7 y)"
	s4="$($L 233 y)%2F$($L 17 z)"
	last="$($L 223 z)"
	[ "${#s1}" -eq 251 ] && [ "${#s2}" -eq 252 ] && [ "${#s3}" -eq 253 ] && [ "${#s4}" -eq 253 ]
	H="$MNT/.history/ns/a"
	run ls "$H"
	assert_output "$s1%+"
	run ls "$H/$s1%+/$s2%+/$s3%+"
	assert_output "$s4%+"
	K="$H/$s1%+/$s2%+/$s3%+/$s4%+/$last"
	run ls "$K"
	assert_output "$(printf '1\n2\n3.deleted\nindex.jsonl')"
	run cat "$K/1"
	assert_output v1
	run cat "$K/2"
	assert_output v2
	run jq -c '[.version, .op]' "$K/index.jsonl"
	assert_output "$(printf '[1,"put"]\n[2,"put"]\n[3,"delete"]')"
	# statehousectl and the Python module find it by the same rule.
	run "$STATEHOUSECTL" -m "$MNT" --ns ns history a "$key"
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	run "$SH_PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); from statehouse.client import encode_key; print(encode_key(sys.argv[2]))' "$REPO_ROOT/python" "$key"
	assert_output "$s1%+/$s2%+/$s3%+/$s4%+/$last"
	# One spelling only: the same bytes cut elsewhere name nothing.
	run sh_errno stat "$H/$s1%+/$s2%+/$s3%+/$s4%+/$last"
	assert_output OK
	run sh_errno stat "$H/${s1:0:100}%+/${s1:100}%+/$s2%+/$s3%+/$s4%+/$last"
	assert_output ENOENT
	run sh_errno stat "$H/$s1%+/$s2%+/${s3%y}%+/y${s4%z}%+/z$last"
	assert_output ENOENT
	run sh_errno stat "$H/$s1%+/$s2%+/$s3%+/$s4%+/${last%z}"
	assert_output ENOENT
	# A second key through the same first segment: the segment is listed once, the
	# keys apart below it.
	mkdir -p "$A/$($L 200 a)/$($L 100 %)"
	echo other >"$A/$($L 200 a)/$($L 100 %)/short"
	run ls "$H"
	assert_output "$s1%+"
	run ls "$H/$s1%+"
	assert_output "$s2%+"
	run ls "$H/$s1%+/$s2%+"
	assert_output "$(printf '%s\n' %2Fshort "$s3%+")"
	run cat "$H/$s1%+/$s2%+/%2Fshort/1"
	assert_output other
	# Every segment directory shows the agent's owner and mode, without write bits.
	chown 1000:1000 "$A"
	chmod 750 "$A"
	run stat -c '%u:%g %a' "$H/$s1%+" "$H/$s1%+/$s2%+/$s3%+/$s4%+" "$K"
	assert_output "$(printf '1000:1000 550\n%.0s' 1 2 3)"
}

@test "a malformed encoded key under .history gives EINVAL" {
	echo v >"$A/k"
	mkdir -p "$A/d"
	echo w >"$A/d/w"
	for e in 'p%q' '%2' '%41' '%' 'x%' 'k%' '%%' '%2G' '%zz'; do
		run sh_errno stat "$MNT/.history/ns/a/$e"
		assert_output EINVAL
	done
	run sh_errno read "$MNT/.history/ns/a/p%q/index.jsonl"
	assert_output EINVAL
	# well-formed but unknown keys are ENOENT
	run sh_errno stat "$MNT/.history/ns/a/nokey"
	assert_output ENOENT
	run sh_errno stat "$MNT/.history/ns/a/%25"
	assert_output ENOENT
	run sh_errno stat "$MNT/.history/ns/a/d%2Fnone"
	assert_output ENOENT
}

@test "an encoded key is only accepted in its canonical form: d%2fw is EINVAL, not a second name of d%2Fw" {
	mkdir -p "$A/d"
	echo w >"$A/d/w"
	echo p >"$A/a%b"
	run sh_errno stat "$MNT/.history/ns/a/d%2Fw"
	assert_output OK
	run sh_errno stat "$MNT/.history/ns/a/d%2fw"
	assert_output EINVAL
	run sh_errno stat "$MNT/.history/ns/a/a%25b"
	assert_output OK
}

@test ".history/ns exists only once the namespace held a key, and stays after its keys are deleted" {
	run sh_errno stat "$MNT/.history/ns"
	assert_output ENOENT
	run sh_errno stat "$MNT/.history/ns/a"
	assert_output ENOENT
	run sh_errno stat "$MNT/.history/never"
	assert_output ENOENT
	run ls -A "$MNT/.history"
	assert_output ''
	# a namespace made with mkdir but never holding a key has no history
	mkdir -p "$MNT/empty/agent"
	run sh_errno stat "$MNT/.history/empty"
	assert_output ENOENT
	echo v >"$A/k"
	[ -d "$MNT/.history/ns" ]
	[ -d "$MNT/.history/ns/a" ]
	[ -d "$MNT/.history/ns/a/k" ]
	rm "$A/k"
	run sh_errno stat "$A/k"
	assert_output ENOENT
	[ -d "$MNT/.history/ns/a/k" ]
	run ls -A "$MNT/.history"
	assert_output ns
	run ls -A "$MNT/.history/ns/a"
	assert_output k
	run sh_errno stat "$MNT/.history/empty"
	assert_output ENOENT
}

@test "a history entry holds one file per version: the value, or an empty N.deleted for a delete" {
	echo one >"$A/k"
	printf 'two\0' >"$A/k"
	rm "$A/k"
	echo four >"$A/k"
	H="$MNT/.history/ns/a/k"
	run ls "$H"
	assert_output "$(printf '1\n2\n3.deleted\n4\nindex.jsonl')"
	run cat "$H/1"
	assert_output one
	cmp <(printf 'two\0') "$H/2"
	[ -f "$H/3.deleted" ]
	[ "$(stat -c %s "$H/3.deleted")" -eq 0 ]
	cmp /dev/null "$H/3.deleted"
	run cat "$H/4"
	assert_output four
	# a version under the other name, or one that does not exist: ENOENT
	run sh_errno stat "$H/3"
	assert_output ENOENT
	run sh_errno stat "$H/2.deleted"
	assert_output ENOENT
	run sh_errno stat "$H/5"
	assert_output ENOENT
	run sh_errno stat "$H/0"
	assert_output ENOENT
	run sh_errno read "$H/index"
	assert_output ENOENT
}

@test "index.jsonl has one line per version: version, commit_ts, txn, RFC 3339 UTC time, op and size" {
	echo one >"$A/k"
	t1="$(sh_xattr commit_ts "$A/k")"
	T="$MNT/.tx/job-7"
	mkdir "$T"
	printf 'twelve\0bytes' >"$T/ns/a/k"
	sh_commit "$T"
	t2="$(jq -r .commit_ts "$T/.commit")"
	time2="$(jq -r .time "$T/.commit")"
	rm "$A/k"
	t3=$(($(sh_probe_ts) - 1))
	T="$MNT/.tx/cleanup"
	mkdir "$T"
	echo x >"$T/ns/a/k"
	sh_commit "$T"
	t4="$(jq -r .commit_ts "$T/.commit")"
	I="$MNT/.history/ns/a/k/index.jsonl"
	[ "$(wc -l <"$I")" -eq 4 ]
	[ "$(stat -c %s "$I")" -eq "$(wc -c <"$I")" ]
	[ "$(tail -c 1 "$I" | od -An -c | tr -d ' ')" = '\n' ]
	# every line is one JSON object with exactly these fields
	[ "$(jq -c . "$I" | wc -l)" -eq 4 ]
	sh_jq '[., inputs] | all(type == "object" and (keys == ["commit_ts","op","size","time","txn","version"]))' "$I"
	sh_jq '[., inputs] | map(.version) == [1,2,3,4]' "$I"
	sh_jq "[., inputs] | map(.commit_ts) == [$t1,$t2,$t3,$t4]" "$I"
	sh_jq '[., inputs] | map(.txn) == ["auto","job-7","auto","cleanup"]' "$I"
	sh_jq '[., inputs] | map(.op) == ["put","put","delete","put"]' "$I"
	sh_jq '[., inputs] | map(.size) == [4,12,0,2]' "$I"
	sh_jq "[., inputs] | all(.time | test(\"$RFC3339_RE\"))" "$I"
	sh_jq "[., inputs] | .[1].time == \"$time2\"" "$I"
	sh_jq '[., inputs] | map(.time | sub("\\.[0-9]+"; "") | fromdateiso8601) | . == sort' "$I"
	# sizes are the sizes of the version files
	[ "$(stat -c %s "$MNT/.history/ns/a/k/1")" -eq 4 ]
	[ "$(stat -c %s "$MNT/.history/ns/a/k/2")" -eq 12 ]
	[ "$(stat -c %s "$MNT/.history/ns/a/k/4")" -eq 2 ]
}

@test ".history shows a new version and a new key right after the commit that made them" {
	echo v1 >"$A/k"
	H="$MNT/.history/ns/a"
	run sh_errno stat "$H/k/2"
	assert_output ENOENT
	run sh_errno stat "$H/fresh"
	assert_output ENOENT
	run cat "$H/k/index.jsonl"
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	old_size="$(stat -c %s "$H/k/index.jsonl")"
	echo v2 >"$A/k"
	echo f >"$A/fresh"
	run cat "$H/k/2"
	assert_output v2
	run cat "$H/fresh/1"
	assert_output f
	run ls "$H"
	assert_output "$(printf 'fresh\nk')"
	run cat "$H/k/index.jsonl"
	[ "${#lines[@]}" -eq 2 ]
	[ "$(stat -c %s "$H/k/index.jsonl")" -gt "$old_size" ]
	[ "$(stat -c %s "$H/k/index.jsonl")" -eq "$(wc -c <"$H/k/index.jsonl")" ]
	sh_jq '[., inputs] | .[1].version == 2 and .[1].op == "put"' "$H/k/index.jsonl"
}

# --- the past is immutable ---------------------------------------------------------------

@test "the past is immutable: .at/T and .history read the same bytes before and after later commits" {
	mkdir -p "$A/dir" "$MNT/ns/b"
	printf 'bin\0ary' >"$A/bin"
	echo keep >"$A/keep"
	echo change >"$A/change"
	echo d >"$A/dir/d"
	echo other >"$MNT/ns/b/o"
	rm "$A/keep"
	echo keep2 >"$A/keep"
	t="$(sh_xattr commit_ts "$A/keep")"
	at_before="$(past_dump "$MNT/.at/$t")"
	at_early="$(past_dump "$MNT/.at/$((t - 3))")"
	hist_before="$(past_dump "$MNT/.history" | grep -v '/index.jsonl ')"
	cp "$MNT/.history/ns/a/keep/index.jsonl" "$SH_TMP/keep.index"
	cp "$MNT/.history/ns/a/change/index.jsonl" "$SH_TMP/change.index"
	[ -n "$at_before" ] && [ -n "$hist_before" ]
	# later commits touch the same keys every way they can
	echo changed >"$A/change"
	rm "$A/bin"
	rm -r "$A/dir"
	echo leaf >"$A/dir"
	mv "$A/keep" "$A/kept"
	T="$MNT/.tx/later"
	mkdir "$T"
	echo b2 >"$T/ns/b/o"
	echo new >"$T/ns/a/new"
	echo changed-again >"$T/ns/a/change"
	sh_commit "$T"
	[ "$(past_dump "$MNT/.at/$t")" = "$at_before" ]
	[ "$(past_dump "$MNT/.at/$((t - 3))")" = "$at_early" ]
	# every old history entry and version file is still there, unchanged; index.jsonl only
	# grows by new lines at its end
	run env LC_ALL=C comm -23 <(echo "$hist_before" | LC_ALL=C sort) \
		<(past_dump "$MNT/.history" | grep -v '/index.jsonl ' | LC_ALL=C sort)
	assert_success
	assert_output ''
	for k in keep change; do
		size="$(stat -c %s "$SH_TMP/$k.index")"
		cmp <(head -c "$size" "$MNT/.history/ns/a/$k/index.jsonl") "$SH_TMP/$k.index"
	done
	[ "$(wc -l <"$MNT/.history/ns/a/change/index.jsonl")" -eq 3 ]
	run cat "$MNT/.at/$t/ns/a/change"
	assert_output change
	cmp <(printf 'bin\0ary') "$MNT/.at/$t/ns/a/bin"
}

@test "the past survives a daemon restart byte for byte: .at/T, version files and index.jsonl" {
	mkdir -p "$A/dir"
	printf 'x\0y\377' >"$A/bin"
	echo d >"$A/dir/d"
	rm "$A/dir/d"
	rmdir "$A/dir"
	echo d2 >"$A/dir"
	T="$MNT/.tx/before-restart"
	mkdir "$T"
	echo t >"$T/ns/a/t"
	echo u >"$T/ns/a/bin"
	sh_commit "$T"
	h="$(jq -r .commit_ts "$T/.commit")"
	dumps() {
		local t
		for ((t = 1; t <= h; t++)); do
			echo "== .at/$t"
			past_dump "$MNT/.at/$t"
		done
		echo "== .history/ns"
		past_dump "$MNT/.history/ns"
		cat "$MNT"/.history/ns/a/*/index.jsonl
	}
	before="$(dumps)"
	sh_remount
	run diff <(echo "$before") <(dumps)
	assert_success
	assert_output ''
	run sh_errno stat "$MNT/.at/$((h + 1))"
	assert_output ENOENT
	# and a commit after the restart (to another namespace) leaves all of it unchanged too
	mkdir -p "$MNT/later/x"
	echo after >"$MNT/later/x/k"
	[ "$(sh_xattr commit_ts "$MNT/later/x/k")" -eq $((h + 1)) ]
	run diff <(echo "$before") <(dumps)
	assert_success
	assert_output ''
}
