#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Every errno of the Errors list and of decisions.md, checked exactly through
# errno.py (bash ignores close() errors of its redirections), plus the message a shell
# prints for the common ones. ENOSPC and EIO live with the fault-injection tests.

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

# --- ENOENT ---

@test "reading, deleting or renaming an unknown key fails with ENOENT" {
	echo v >"$A/k"
	run sh_errno read "$A/missing"
	assert_output ENOENT
	run sh_errno unlink "$A/missing"
	assert_output ENOENT
	run sh_errno rename "$A/missing" "$A/other"
	assert_output ENOENT
	run sh_errno stat "$MNT/nons/noagent/k"
	assert_output ENOENT
	run cat "$A/missing"
	assert_failure
	assert_output --partial 'No such file or directory'
}

@test "an unknown transaction fails with ENOENT" {
	run sh_errno stat "$MNT/.tx/nope"
	assert_output ENOENT
	run sh_errno read "$MNT/.tx/nope/.status"
	assert_output ENOENT
	run sh_errno rmdir "$MNT/.tx/nope"
	assert_output ENOENT
	run sh_errno write "$MNT/.tx/nope/ns/a/k" v
	assert_output ENOENT
}

@test "deleting a key in a transaction that its snapshot does not hold fails with ENOENT" {
	echo v >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	run sh_errno unlink "$T/ns/a/missing"
	assert_output ENOENT
	rm "$T/ns/a/k"
	run sh_errno read "$T/ns/a/k"
	assert_output ENOENT
	run sh_errno unlink "$T/ns/a/k"
	assert_output ENOENT
}

# --- EEXIST ---

@test "beginning a transaction under a taken name fails with EEXIST" {
	mkdir "$MNT/.tx/job"
	run sh_errno mkdir "$MNT/.tx/job"
	assert_output EEXIST
	run mkdir "$MNT/.tx/job"
	assert_failure
	assert_output --partial 'File exists'
	# a committed transaction keeps its name until rmdir
	sh_commit "$MNT/.tx/job"
	run sh_errno mkdir "$MNT/.tx/job"
	assert_output EEXIST
	rmdir "$MNT/.tx/job"
	run sh_errno mkdir "$MNT/.tx/job"
	assert_output OK
}

@test "an exclusive create of an existing key fails with EEXIST and changes nothing" {
	echo v >"$A/k"
	run sh_errno create "$A/k"
	assert_output EEXIST
	run cat "$A/k"
	assert_output v
	[ "$(sh_xattr version "$A/k")" = 1 ]
}

# --- ESTALE ---

@test "committing after another transaction committed the same key fails with ESTALE" {
	echo base >"$A/k"
	mkdir "$MNT/.tx/a" "$MNT/.tx/b"
	echo a >"$MNT/.tx/a/ns/a/k"
	echo b >"$MNT/.tx/b/ns/a/k"
	run sh_errno rename "$MNT/.tx/a/.commit.pending" "$MNT/.tx/a/.commit"
	assert_output OK
	run sh_errno rename "$MNT/.tx/b/.commit.pending" "$MNT/.tx/b/.commit"
	assert_output ESTALE
	sh_jq '.state == "conflict" and .error == "ESTALE" and .key == "ns/a/k"' "$MNT/.tx/b/.status"
}

# --- ETIMEDOUT ---

@test "creates, writes and the commit of an expired transaction fail with ETIMEDOUT" {
	echo base >"$A/k"
	T="$MNT/.tx/late"
	mkdir "$T"
	echo 1000 >"$T/.timeout_ms"
	sh_wait_until 30 sh_jq '.state == "expired"' "$T/.status"
	run sh_errno write "$T/ns/a/k" v
	assert_output ETIMEDOUT
	run sh_errno create "$T/ns/a/new"
	assert_output ETIMEDOUT
	run sh_errno write "$T/.note" v
	assert_output ETIMEDOUT
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ETIMEDOUT
	run bash -c 'echo x >"$1"' _ "$T/ns/a/k"
	assert_failure
	assert_output --partial 'Connection timed out'
	run cat "$A/k"
	assert_output base
}

# --- EROFS ---

@test "creating or writing anything in a committed transaction fails with EROFS" {
	echo v >"$A/k"
	T="$MNT/.tx/done"
	mkdir "$T"
	echo w >"$T/ns/a/k"
	sh_commit "$T"
	run sh_errno create "$T/another"
	assert_output EROFS
	run sh_errno mkdir "$T/ns2"
	assert_output EROFS
	run sh_errno write "$T/.commit" x
	assert_output EROFS
	run sh_errno write "$T/.timeout_ms" 5000
	assert_output EROFS
	run bash -c 'echo x >"$1"' _ "$T/another"
	assert_failure
	assert_output --partial 'Read-only file system'
	run cat "$A/k"
	assert_output w
}

@test "a note file left in a committed transaction is read-only and cannot commit again" {
	T="$MNT/.tx/done"
	mkdir "$T"
	echo 'a note' >"$T/.note"
	sh_commit "$T"
	run sh_errno write "$T/.note" changed
	assert_output EROFS
	run sh_errno rename "$T/.note" "$T/.commit"
	assert_output EROFS
	run sh_errno unlink "$T/.note"
	assert_output EROFS
	run cat "$T/.note"
	assert_output 'a note'
}

@test "writing .health, .version or a transaction's .status fails with EROFS" {
	run sh_errno write "$MNT/.health" x
	assert_output EROFS
	run sh_errno write "$MNT/.version" x
	assert_output EROFS
	mkdir "$MNT/.tx/t"
	run sh_errno write "$MNT/.tx/t/.status" x
	assert_output EROFS
	run cat "$MNT/.health"
	assert_output ok
}

# --- EXDEV ---

@test "rename between the live tree and a transaction fails with EXDEV in both directions" {
	echo v >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	echo s >"$T/ns/a/s"
	run sh_errno rename "$A/k" "$T/ns/a/k2"
	assert_output EXDEV
	run sh_errno rename "$T/ns/a/s" "$A/s"
	assert_output EXDEV
	run sh_errno rename "$A/k" "$T/.commit"
	assert_output EXDEV
	run cat "$A/k"
	assert_output v
	run sh_errno stat "$A/s"
	assert_output ENOENT
	sh_jq '.ops == 1' "$T/.status"
}

@test "rename between two transactions fails with EXDEV" {
	echo v >"$A/k"
	mkdir "$MNT/.tx/one" "$MNT/.tx/two"
	echo s >"$MNT/.tx/one/ns/a/s"
	run sh_errno rename "$MNT/.tx/one/ns/a/s" "$MNT/.tx/two/ns/a/s"
	assert_output EXDEV
	run sh_errno rename "$MNT/.tx/one/.commit.pending" "$MNT/.tx/two/.commit"
	assert_output EXDEV
}

@test "rename into or out of a reserved area fails with EXDEV" {
	echo v >"$A/k"
	run sh_errno rename "$A/k" "$MNT/.tx/k"
	assert_output EXDEV
	run sh_errno rename "$MNT/.version" "$A/version"
	assert_output EXDEV
	run cat "$A/k"
	assert_output v
}

# --- EFBIG ---

@test "a value over the default max_value_bytes of 1 MiB fails with EFBIG and commits nothing" {
	run sh_errno writen "$A/max" 1048576
	assert_output OK
	[ "$(stat -c %s "$A/max")" -eq 1048576 ]
	ts0="$(sh_probe_ts)"
	run sh_errno writen "$A/big" 1048577
	assert_output EFBIG
	run sh_errno stat "$A/big"
	assert_output ENOENT
	echo small >"$A/k"
	run sh_errno writen "$A/k" 2000000
	assert_output EFBIG
	run cat "$A/k"
	assert_output small
	[ "$(sh_xattr version "$A/k")" = 1 ]
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 2)) ]
}

@test "EFBIG is reported at write(), so head prints File too large" {
	run bash -c 'head -c 1048577 /dev/zero >"$1"' _ "$A/big"
	assert_failure
	assert_output --partial 'File too large'
	run sh_errno stat "$A/big"
	assert_output ENOENT
}

@test "-o max_value_bytes sets the limit for live and staged writes" {
	sh_remount -o max_value_bytes=100
	run sh_errno writen "$A/ok" 100
	assert_output OK
	run sh_errno writen "$A/big" 101
	assert_output EFBIG
	run sh_errno stat "$A/big"
	assert_output ENOENT
	T="$MNT/.tx/t"
	mkdir "$T"
	run sh_errno writen "$T/ns/a/big" 101
	assert_output EFBIG
}

# --- EINVAL ---

@test "a regular file at the namespace or agent level fails with EISDIR: those names are directories" {
	echo v >"$A/k"
	run sh_errno write "$MNT/foo" v
	assert_output EISDIR
	run sh_errno write "$MNT/ns/foo" v
	assert_output EISDIR
	run bash -c 'echo v >"$1"' _ "$MNT/ns/foo"
	assert_failure
	assert_output --partial 'Is a directory'
	run ls "$MNT/ns"
	assert_output a
}

@test "creating a reserved dot name at the live root fails with EINVAL" {
	run sh_errno write "$MNT/.foo" v
	assert_output EINVAL
	run sh_errno mkdir "$MNT/.at2"
	assert_output EINVAL
	run sh_errno mkdir "$MNT/.foo"
	assert_output EINVAL
}

@test "a transaction name beginning with . fails with EINVAL" {
	run sh_errno mkdir "$MNT/.tx/.hidden"
	assert_output EINVAL
	run ls -A "$MNT/.tx"
	assert_output ''
}

@test "a transaction name over 255 bytes is refused" {
	# decisions.md 5 says EINVAL for .tx/NAME, decisions.md 4 says ENAMETOOLONG for any
	# component over 255 bytes: either refusal is accepted, a success is not.
	run sh_errno mkdir "$MNT/.tx/$(sh_longname 256)"
	[[ "$output" = EINVAL || "$output" = ENAMETOOLONG ]]
	run sh_errno mkdir "$MNT/.tx/$(sh_longname 255)"
	assert_output OK
}

@test ".timeout_ms rejects anything but a decimal from 1 to max_txn_timeout_ms (3600000) with EINVAL" {
	T="$MNT/.tx/t"
	mkdir "$T"
	for bad in abc 0 -5 3600001 86400001 1.5 12x; do
		run sh_errno write "$T/.timeout_ms" "$bad"
		[ "$output" = EINVAL ] || { echo "value '$bad' gave $output" >&2; false; }
	done
	run cat "$T/.timeout_ms"
	assert_output 30000
	run sh_errno write "$T/.timeout_ms" 3600000
	assert_output OK
	run cat "$T/.timeout_ms"
	assert_output 3600000
}

# --- ENAMETOOLONG ---

@test "a key component over 255 bytes fails with ENAMETOOLONG" {
	run sh_errno write "$A/$(sh_longname 256)" v
	assert_output ENAMETOOLONG
	run sh_errno mkdir "$A/$(sh_longname 256)"
	assert_output ENAMETOOLONG
	run sh_errno write "$A/$(sh_longname 255)" v
	assert_output OK
	run bash -c 'echo v >"$1"' _ "$A/$(sh_longname 300)"
	assert_failure
	assert_output --partial 'File name too long'
}

@test "a key over 1024 bytes fails with ENAMETOOLONG and one of exactly 1024 bytes works" {
	d="$A/$(sh_longname 200 a)/$(sh_longname 200 b)/$(sh_longname 200 c)/$(sh_longname 200 d)"
	mkdir -p "$d"
	# key = 4 x 200 bytes + 4 slashes + last component
	run sh_errno write "$d/$(sh_longname 220 e)" v
	assert_output OK
	run cat "$d/$(sh_longname 220 e)"
	assert_output v
	run sh_errno write "$d/$(sh_longname 221 f)" v
	assert_output ENAMETOOLONG
	run sh_errno stat "$d/$(sh_longname 221 f)"
	assert_output ENOENT
}

@test "a key over 1024 bytes is refused at open, so a shell's redirection fails too" {
	d="$A/$(sh_longname 200 a)/$(sh_longname 200 b)/$(sh_longname 200 c)/$(sh_longname 200 d)"
	mkdir -p "$d"
	before=$(sh_probe_ts)
	# bash ignores the errors of close(): only an open that fails makes it exit non-zero.
	run bash -c 'echo v >"$1"' _ "$d/$(sh_longname 221 f)"
	assert_failure
	assert_output --partial 'File name too long'
	run touch "$d/$(sh_longname 221 f)"
	assert_failure
	assert_output --partial 'File name too long'
	run sh_errno create "$d/$(sh_longname 221 f)"
	assert_output ENAMETOOLONG
	run sh_errno stat "$d/$(sh_longname 221 f)"
	assert_output ENOENT
	# Nothing committed in between: the next probe is the very next commit.
	[ "$(sh_probe_ts)" -eq $((before + 1)) ]
}

# --- EISDIR / ENOTDIR ---

@test "writing a key that is a prefix of another key fails with EISDIR" {
	mkdir -p "$A/p"
	echo q >"$A/p/q"
	run sh_errno write "$A/p" v
	assert_output EISDIR
	echo x >"$A/x"
	run sh_errno rename "$A/x" "$A/p"
	assert_output EISDIR
	run cat "$A/p/q"
	assert_output q
}

@test "writing below a key, as if it were a directory, fails with ENOTDIR" {
	echo v >"$A/k"
	run sh_errno write "$A/k/sub" v
	assert_output ENOTDIR
	run sh_errno mkdir "$A/k/sub"
	assert_output ENOTDIR
	mkdir -p "$A/d"
	echo y >"$A/d/y"
	run sh_errno rename "$A/d" "$A/k"
	assert_output ENOTDIR
	run cat "$A/k"
	assert_output v
}

@test "the key-versus-prefix rules hold inside a transaction's view" {
	echo v >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	run sh_errno write "$T/ns/a/k/sub" v
	assert_output ENOTDIR
	mkdir -p "$T/ns/a/p"
	echo q >"$T/ns/a/p/q"
	run sh_errno write "$T/ns/a/p" v
	assert_output EISDIR
}

@test "a commit whose key became a prefix outside fails with EISDIR and applies nothing" {
	echo anchor >"$A/anchor"
	T="$MNT/.tx/shape1"
	mkdir "$T"
	echo mine >"$T/ns/a/p"
	echo side >"$T/ns/a/side"
	mkdir -p "$A/p"
	echo theirs >"$A/p/q"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output EISDIR
	sh_jq '.state == "conflict" and .error == "EISDIR" and .key == "ns/a/p"' "$T/.status"
	run cat "$A/p/q"
	assert_output theirs
	run sh_errno stat "$A/side"
	assert_output ENOENT
}

@test "a commit below a path that became a key outside fails with ENOTDIR and applies nothing" {
	echo anchor >"$A/anchor"
	T="$MNT/.tx/shape2"
	mkdir "$T"
	mkdir -p "$T/ns/a/p"
	echo mine >"$T/ns/a/p/q"
	echo side >"$T/ns/a/side"
	echo theirs >"$A/p"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ENOTDIR
	sh_jq '.state == "conflict" and .error == "ENOTDIR" and (.key == "ns/a/p/q" or .key == "ns/a/p")' "$T/.status"
	run cat "$A/p"
	assert_output theirs
	run sh_errno stat "$A/side"
	assert_output ENOENT
}

# --- EAGAIN ---

@test "beginning more than max_open_txns transactions fails with EAGAIN until one ends" {
	sh_remount -o max_open_txns=2
	mkdir "$MNT/.tx/one" "$MNT/.tx/two"
	run sh_errno mkdir "$MNT/.tx/three"
	assert_output EAGAIN
	run mkdir "$MNT/.tx/three"
	assert_failure
	assert_output --partial 'Resource temporarily unavailable'
	run ls "$MNT/.tx"
	assert_output "$(printf 'one\ntwo')"
	rmdir "$MNT/.tx/one"
	run sh_errno mkdir "$MNT/.tx/three"
	assert_output OK
}

@test "committed and expired transactions do not count against max_open_txns" {
	sh_remount -o max_open_txns=1
	mkdir "$MNT/.tx/one"
	sh_commit "$MNT/.tx/one"
	run sh_errno mkdir "$MNT/.tx/two"
	assert_output OK
	echo 1000 >"$MNT/.tx/two/.timeout_ms"
	sh_wait_until 30 sh_jq '.state == "expired"' "$MNT/.tx/two/.status"
	run sh_errno mkdir "$MNT/.tx/three"
	assert_output OK
}

# --- ENOTEMPTY ---

@test "rmdir of a live directory that holds keys fails with ENOTEMPTY" {
	mkdir -p "$A/dir"
	echo v >"$A/dir/k"
	run sh_errno rmdir "$A/dir"
	assert_output ENOTEMPTY
	run sh_errno rmdir "$A"
	assert_output ENOTEMPTY
	run sh_errno rmdir "$MNT/ns"
	assert_output ENOTEMPTY
	run cat "$A/dir/k"
	assert_output v
}

@test "rmdir of a non-empty directory in a transaction's view fails with ENOTEMPTY" {
	mkdir -p "$A/dir"
	echo v >"$A/dir/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	run sh_errno rmdir "$T/ns/a/dir"
	assert_output ENOTEMPTY
	sh_jq '.ops == 0' "$T/.status"
}

# --- EBUSY ---

@test "writing .timeout_ms after the first staged op fails with EBUSY" {
	T="$MNT/.tx/t"
	mkdir "$T"
	mkdir -p "$T/ns/a"
	echo v >"$T/ns/a/k"
	run sh_errno write "$T/.timeout_ms" 5000
	assert_output EBUSY
	run cat "$T/.timeout_ms"
	assert_output 30000
}

# --- A failed commit changes nothing ---

@test "a failed commit changes nothing: no key, no version, no commit_ts is consumed" {
	echo base1 >"$A/k1"
	echo base2 >"$A/k2"
	echo base3 >"$A/k3"
	T="$MNT/.tx/fail"
	mkdir "$T"
	echo new1 >"$T/ns/a/k1"
	rm "$T/ns/a/k2"
	echo new4 >"$T/ns/a/k4"
	echo outside >"$A/k3"
	echo new3 >"$T/ns/a/k3"
	ts0="$(sh_probe_ts)"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
	run cat "$A/k1"
	assert_output base1
	run cat "$A/k2"
	assert_output base2
	run cat "$A/k3"
	assert_output outside
	run sh_errno stat "$A/k4"
	assert_output ENOENT
	[ "$(sh_xattr version "$A/k1")" = 1 ]
	[ "$(sh_xattr version "$A/k2")" = 1 ]
	[ "$(sh_xattr version "$A/k3")" = 2 ]
	run sh_errno stat "$T/.commit"
	assert_output ENOENT
	# a new transaction retrying the same work commits at the next commit_ts
	rmdir "$T"
	mkdir "$T"
	echo new1 >"$T/ns/a/k1"
	echo new3 >"$T/ns/a/k3"
	sh_commit "$T"
	sh_jq ".commit_ts == $((ts1 + 1))" "$T/.commit"
	[ "$(sh_xattr version "$A/k3")" = 3 ]
}
