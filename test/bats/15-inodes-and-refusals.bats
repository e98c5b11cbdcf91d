#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Inode numbers that name one file as one file (across restarts, forgets and load), and
# the answers to what the tree does not have (symlinks, hard links, device nodes) or
# does its own way (RENAME_EXCHANGE, fallocate), with the errno a tool expects.

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

ino() {
	stat -c %i -- "$1"
}

# The kernel forgets every inode it does not use (dentries and inodes are reclaimable).
forget_all() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
}

# --- inode numbers ---

@test "a key, its agent and a nested directory keep their inode numbers across a restart" {
	mkdir -p "$A/d/e"
	echo v >"$A/d/e/k"
	echo w >"$A/top"
	before="$(ino "$A/d/e/k") $(ino "$A/top") $(ino "$A/d") $(ino "$A") $(ino "$MNT/ns")"
	sh_remount
	# looked up in another order than before the restart
	top=$(ino "$A/top")
	ns=$(ino "$MNT/ns")
	d=$(ino "$A/d")
	k=$(ino "$A/d/e/k")
	assert_equal "$k $top $d $(ino "$A") $ns" "$before"
}

@test "a key keeps its inode number after the kernel forgot it" {
	echo v >"$A/k"
	before=$(ino "$A/k")
	forget_all
	assert_equal "$(ino "$A/k")" "$before"
}

@test "lstat of one key keeps its inode number while another process creates and deletes other keys" {
	echo v >"$A/k"
	(
		for ((i = 0; i < 400; i++)); do
			echo "$i" >"$A/other-$((i % 7))"
			rm -f "$A/other-$(((i + 3) % 7))"
		done
	) 3>&- &
	churn=$!
	for ((i = 0; i < 200; i++)); do
		stat -c %i -- "$A/k"
		((i % 25)) || forget_all
	done >"$SH_TMP/inos"
	wait "$churn"
	run sort -u "$SH_TMP/inos"
	assert_equal "${#lines[@]}" 1
}

@test "the same path in the live tree, in .tx/A/ and in .at/T/ has three inode numbers" {
	echo v >"$A/k"
	ts=$(sh_xattr commit_ts "$A/k")
	mkdir "$MNT/.tx/A"
	live=$(ino "$A/k")
	tx=$(ino "$MNT/.tx/A/ns/a/k")
	at=$(ino "$MNT/.at/$ts/ns/a/k")
	[ "$live" != "$tx" ] && [ "$live" != "$at" ] && [ "$tx" != "$at" ]
	sh_remount
	assert_equal "$(ino "$A/k")" "$live"
	assert_equal "$(ino "$MNT/.at/$ts/ns/a/k")" "$at"
}

@test "a path that turns from file to directory gets a new inode number" {
	echo v >"$A/p"
	file=$(ino "$A/p")
	rm "$A/p"
	mkdir -p "$A/p"
	echo w >"$A/p/k"
	dir=$(ino "$A/p")
	[ "$file" != "$dir" ]
	sh_remount
	assert_equal "$(ino "$A/p")" "$dir"
}

@test "a key created while a renamed key still holds its number gets a number of its own" {
	echo one >"$A/a"
	first=$(ino "$A/a")
	mv "$A/a" "$A/b"
	assert_equal "$(ino "$A/b")" "$first"
	echo two >"$A/a"
	[ "$(ino "$A/a")" != "$(ino "$A/b")" ]
	sh_remount
	[ "$(ino "$A/a")" != "$(ino "$A/b")" ]
	assert_equal "$(cat "$A/a") $(cat "$A/b")" "two one"
}

@test "a key recreated while its deleted inode is still open gets a number of its own" {
	echo old >"$A/k"
	exec 5<"$A/k"
	old=$(stat -L -c %i /proc/self/fd/5)
	rm "$A/k"
	echo new >"$A/k"
	now=$(ino "$A/k")
	exec 5<&-
	[ "$old" != "$now" ]
}

@test "the names at the root keep their reserved inode numbers" {
	assert_equal "$(ino "$MNT") $(ino "$MNT/.tx") $(ino "$MNT/.health")" "1 2 3"
	sh_remount
	assert_equal "$(ino "$MNT") $(ino "$MNT/.tx") $(ino "$MNT/.health")" "1 2 3"
}

# --- symlink, mknod, mkfifo, link ---

@test "symlink, mknod, mkfifo and link of a new name fail with EPERM" {
	echo v >"$A/k"
	for op in "symlink $A/s k" "mknod $A/n" "mkfifo $A/f" "link $A/l $A/k"; do
		run sh_errno $op
		assert_output EPERM
	done
	mkdir "$MNT/.tx/T"
	run sh_errno symlink "$MNT/.tx/T/ns/a/s" k
	assert_output EPERM
	run sh_errno link "$MNT/.tx/T/ns/a/l" "$MNT/.tx/T/ns/a/k"
	assert_output EPERM
	run ls "$A"
	assert_output k
}

@test "symlink, mknod, mkfifo and link onto an existing name fail with EEXIST" {
	echo v >"$A/k"
	echo w >"$A/j"
	for op in "symlink $A/k x" "mknod $A/k" "mkfifo $A/k" "link $A/j $A/k"; do
		run sh_errno $op
		assert_output EEXIST
	done
	assert_equal "$(cat "$A/j")" w
}

@test "link of a missing source fails with ENOENT" {
	run sh_errno link "$A/l" "$A/missing"
	assert_output ENOENT
}

@test "symlink, mknod and link in .at or a committed transaction fail with EROFS" {
	echo v >"$A/k"
	ts=$(sh_xattr commit_ts "$A/k")
	run sh_errno symlink "$MNT/.at/$ts/ns/a/s" k
	assert_output EROFS
	run sh_errno mknod "$MNT/.at/$ts/ns/a/n"
	assert_output EROFS
	run sh_errno link "$MNT/.at/$ts/ns/a/l" "$MNT/.at/$ts/ns/a/k"
	assert_output EROFS
	T="$MNT/.tx/done"
	mkdir "$T"
	echo x >"$T/ns/a/x"
	mv "$T/.commit.pending" "$T/.commit"
	run sh_errno symlink "$T/ns/a/s" k
	assert_output EROFS
}

# --- RENAME_EXCHANGE ---

@test "RENAME_EXCHANGE swaps two keys in the live tree in one commit" {
	echo one >"$A/a"
	echo second >"$A/b"
	before=$(sh_probe_ts)
	run sh_errno exchange "$A/a" "$A/b"
	assert_output OK
	after=$(sh_probe_ts)
	assert_equal "$((after - before))" 2
	assert_equal "$(cat "$A/a") $(cat "$A/b")" "second one"
	assert_equal "$(stat -c %s "$A/a")" 7
	assert_equal "$(sh_xattr commit_ts "$A/a")" "$((before + 1))"
	assert_equal "$(sh_xattr commit_ts "$A/b")" "$((before + 1))"
	sh_remount
	assert_equal "$(cat "$A/a") $(cat "$A/b")" "second one"
}

@test "RENAME_EXCHANGE in a transaction stages the swap and commits it with the rest" {
	echo one >"$A/a"
	echo second >"$A/b"
	T="$MNT/.tx/X"
	mkdir "$T"
	run sh_errno exchange "$T/ns/a/a" "$T/ns/a/b"
	assert_output OK
	assert_equal "$(cat "$T/ns/a/a") $(cat "$T/ns/a/b")" "second one"
	assert_equal "$(cat "$A/a") $(cat "$A/b")" "one second"
	mv "$T/.commit.pending" "$T/.commit"
	assert_equal "$(cat "$A/a") $(cat "$A/b")" "second one"
	assert_equal "$(sh_xattr commit_ts "$A/a")" "$(sh_xattr commit_ts "$A/b")"
}

@test "RENAME_EXCHANGE with a missing name fails with ENOENT, with a directory with EINVAL" {
	echo one >"$A/a"
	mkdir -p "$A/d"
	echo x >"$A/d/x"
	run sh_errno exchange "$A/a" "$A/missing"
	assert_output ENOENT
	run sh_errno exchange "$A/a" "$A/d"
	assert_output EINVAL
	mkdir "$MNT/.tx/E"
	run sh_errno exchange "$MNT/.tx/E/ns/a/a" "$MNT/.tx/E/ns/a/missing"
	assert_output ENOENT
	run sh_errno exchange "$A/a" "$MNT/.tx/E/ns/a/a"
	assert_output EXDEV
	assert_equal "$(cat "$A/a")" one
}

# --- fallocate ---

@test "fallocate mode 0 extends a key with zeros up to max_value_bytes" {
	printf abc >"$A/k"
	run sh_errno fallocate "$A/k" 10
	assert_output OK
	assert_equal "$(stat -c %s "$A/k")" 10
	assert_equal "$(od -An -c "$A/k" | tr -s ' ')" " a b c \\0 \\0 \\0 \\0 \\0 \\0 \\0"
	run sh_errno fallocate "$A/k" 2
	assert_output OK
	assert_equal "$(stat -c %s "$A/k")" 10
	run sh_errno fallocate "$A/k" 1048576
	assert_output OK
	assert_equal "$(stat -c %s "$A/k")" 1048576
}

@test "fallocate beyond max_value_bytes fails with EFBIG and commits nothing" {
	printf abc >"$A/k"
	v=$(sh_xattr version "$A/k")
	run sh_errno fallocate "$A/k" 1048577
	assert_output EFBIG
	assert_equal "$(cat "$A/k")" abc
	assert_equal "$(sh_xattr version "$A/k")" "$v"
}

@test "fallocate in a transaction stages the zeros" {
	printf abc >"$A/k"
	T="$MNT/.tx/F"
	mkdir "$T"
	run sh_errno fallocate "$T/ns/a/k" 5
	assert_output OK
	assert_equal "$(stat -c %s "$T/ns/a/k")" 5
	assert_equal "$(stat -c %s "$A/k")" 3
}

@test "fallocate with another mode than 0 (keep size, punch hole) fails with EOPNOTSUPP" {
	printf abc >"$A/k"
	run sh_errno fallocate "$A/k" 10:1 # FALLOC_FL_KEEP_SIZE
	assert_output ENOTSUP # EOPNOTSUPP: the same number on Linux
	run sh_errno fallocate "$A/k" 1:3 # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
	assert_output ENOTSUP # EOPNOTSUPP: the same number on Linux
	assert_equal "$(cat "$A/k")" abc
}
