#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Transactions under .tx/NAME: begin by mkdir, snapshot view, staging, commit by rename,
# .commit and .status, conflicts, timeouts, the reaper, versions and commit_ts.
# See README "Semantics" and decisions.md 5-8, 14.

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

@test "the user's session from the issue works line by line" {
	mkdir -p "$MNT/default/agent-1"
	echo hello > $MNT/default/agent-1/greeting
	echo 'to be deleted' >$MNT/default/agent-1/scratch
	ts0="$(sh_xattr commit_ts "$MNT/default/agent-1/scratch")"
	T=$MNT/.tx/job-42; mkdir "$T"
	echo '{"step":3}' > "$T/default/agent-1/progress"
	rm "$T/default/agent-1/scratch"
	sh_jq '.state == "open" and .ops == 2' "$T/.status"
	mv "$T/.commit.pending" "$T/.commit"
	run cat "$T/.commit"
	assert_success
	sh_jq ".commit_ts == $((ts0 + 1)) and .txn == \"job-42\" and .ops == 2" "$T/.commit"
	rmdir "$T"
	run cat $MNT/default/agent-1/greeting
	assert_output hello
	run cat "$MNT/default/agent-1/progress"
	assert_output '{"step":3}'
	run sh_errno stat "$MNT/default/agent-1/scratch"
	assert_output ENOENT
	run sh_errno stat "$T"
	assert_output ENOENT
}

@test "mkdir .tx/NAME begins a transaction and ls .tx lists the open ones" {
	run ls "$MNT/.tx"
	assert_output ''
	mkdir "$MNT/.tx/one"
	mkdir "$MNT/.tx/two"
	[ -d "$MNT/.tx/one" ]
	run ls "$MNT/.tx"
	assert_output "$(printf 'one\ntwo')"
	rmdir "$MNT/.tx/one"
	run ls "$MNT/.tx"
	assert_output two
}

@test ".commit.pending exists and is empty from the start and .commit does not exist yet" {
	T="$MNT/.tx/t"
	mkdir "$T"
	[ -f "$T/.commit.pending" ]
	[ "$(stat -c %s "$T/.commit.pending")" -eq 0 ]
	run cat "$T/.commit.pending"
	assert_output ''
	run sh_errno stat "$T/.commit"
	assert_output ENOENT
}

@test ".status of a new transaction is open with zero ops, its name, begin_ts and a 30 s timeout" {
	echo v >"$A/k"
	ts0="$(sh_probe_ts)"
	T="$MNT/.tx/fresh"
	mkdir "$T"
	sh_jq ".state == \"open\" and .txn == \"fresh\" and .ops == 0 and .begin_ts == $ts0" "$T/.status"
	sh_jq '(.expires_in_ms | type) == "number" and .expires_in_ms > 0 and .expires_in_ms <= 30000' "$T/.status"
	run cat "$T/.timeout_ms"
	assert_output 30000
}

@test ".status counts each staged write and delete as one op" {
	echo v >"$A/gone"
	T="$MNT/.tx/t"
	mkdir "$T"
	echo 1 >"$T/ns/a/x"
	sh_jq '.state == "open" and .ops == 1' "$T/.status"
	echo 2 >"$T/ns/a/y"
	sh_jq '.ops == 2' "$T/.status"
	rm "$T/ns/a/gone"
	sh_jq '.ops == 3' "$T/.status"
}

@test "the view shows the tree as it was at begin, not changes committed outside later" {
	echo before >"$A/k"
	echo doomed >"$A/del"
	mkdir -p "$A/sub"
	echo s >"$A/sub/s"
	T="$MNT/.tx/snap"
	mkdir "$T"
	echo after >"$A/k"
	echo born >"$A/new"
	rm "$A/del"
	rm "$A/sub/s"
	run cat "$T/ns/a/k"
	assert_output before
	run cat "$T/ns/a/del"
	assert_output doomed
	run cat "$T/ns/a/sub/s"
	assert_output s
	run sh_errno stat "$T/ns/a/new"
	assert_output ENOENT
	run ls "$T/ns/a"
	assert_output "$(printf 'del\nk\nsub')"
	run ls "$T"
	assert_output ns
	# and the live tree did change
	run cat "$A/k"
	assert_output after
}

@test "staged writes and deletes are visible inside the transaction only, until commit" {
	echo old >"$A/k"
	echo doomed >"$A/del"
	T="$MNT/.tx/stage"
	mkdir "$T"
	echo staged >"$T/ns/a/k"
	echo fresh >"$T/ns/a/new"
	rm "$T/ns/a/del"
	# inside: the overlay
	run cat "$T/ns/a/k"
	assert_output staged
	[ "$(stat -c %s "$T/ns/a/k")" -eq 7 ]
	run ls "$T/ns/a"
	assert_output "$(printf 'k\nnew')"
	run sh_errno read "$T/ns/a/del"
	assert_output ENOENT
	# outside: nothing yet
	run cat "$A/k"
	assert_output old
	run cat "$A/del"
	assert_output doomed
	run sh_errno stat "$A/new"
	assert_output ENOENT
	run ls "$A"
	assert_output "$(printf 'del\nk')"
	sh_commit "$T"
	run cat "$A/k"
	assert_output staged
	run cat "$A/new"
	assert_output fresh
	run sh_errno stat "$A/del"
	assert_output ENOENT
}

@test "renaming .commit.pending to .commit makes all staged keys visible at one commit_ts" {
	T="$MNT/.tx/atomic"
	mkdir "$T"
	for i in 1 2 3; do echo "$i" >"$T/ns/a/k$i"; done
	mv "$T/.commit.pending" "$T/.commit"
	ts="$(jq -r .commit_ts "$T/.commit")"
	for i in 1 2 3; do
		run cat "$A/k$i"
		assert_output "$i"
		[ "$(sh_xattr commit_ts "$A/k$i")" = "$ts" ]
	done
	sh_jq ".ops == 3 and .txn == \"atomic\"" "$T/.commit"
}

@test "committing by renaming a dot-named note file records the commit and consumes the note" {
	T="$MNT/.tx/noted"
	mkdir "$T"
	echo v >"$T/ns/a/k"
	echo '{"who":"agent-1","why":"nightly run"}' >"$T/.why.json"
	run cat "$T/.why.json"
	assert_output '{"who":"agent-1","why":"nightly run"}'
	ts0="$(sh_probe_ts)"
	mv "$T/.why.json" "$T/.commit"
	sh_jq ".commit_ts == $((ts0 + 1)) and .txn == \"noted\" and .ops == 1" "$T/.commit"
	run sh_errno stat "$T/.why.json"
	assert_output ENOENT
	run cat "$A/k"
	assert_output v
}

@test ".commit reads JSON with commit_ts, txn, ops and an RFC 3339 UTC time that is the keys' mtime" {
	T="$MNT/.tx/json"
	mkdir "$T"
	echo a >"$T/ns/a/x"
	echo b >"$T/ns/a/y"
	sh_commit "$T"
	sh_jq '(.commit_ts | type) == "number" and .txn == "json" and .ops == 2' "$T/.commit"
	sh_jq '.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|\\+00:00)$")' "$T/.commit"
	t="$(date -d "$(jq -r .time "$T/.commit")" +%s)"
	[ "$(stat -c %Y "$A/x")" -eq "$t" ]
	[ "$(stat -c %Y "$A/y")" -eq "$t" ]
}

@test ".status after a commit says committed and carries the commit_ts of .commit" {
	ts0="$(sh_probe_ts)"
	T="$MNT/.tx/done"
	mkdir "$T"
	echo v >"$T/ns/a/k"
	sh_commit "$T"
	ts="$(jq -r .commit_ts "$T/.commit")"
	[ "$ts" -eq $((ts0 + 1)) ]
	sh_jq ".state == \"committed\" and .txn == \"done\" and .ops == 1 and .begin_ts == $ts0 and .commit_ts == $ts" "$T/.status"
}

@test "after a commit the directory keeps .commit, .status and notes, its view answers EROFS and rmdir removes it" {
	echo v >"$A/k"
	T="$MNT/.tx/after"
	mkdir "$T"
	echo w >"$T/ns/a/k"
	echo 'a note' >"$T/.note"
	sh_commit "$T"
	[ -f "$T/.commit" ]
	[ -f "$T/.status" ]
	run cat "$T/.note"
	assert_output 'a note'
	run sh_errno stat "$T/ns"
	assert_output EROFS
	run sh_errno stat "$T/ns/a/k"
	assert_output EROFS
	run ls -A "$T"
	assert_output "$(printf '.commit\n.expect\n.isolation\n.note\n.status\n.timeout_ms')"
	rmdir "$T"
	run sh_errno stat "$T"
	assert_output ENOENT
	run ls "$MNT/.tx"
	assert_output ''
}

@test "an empty commit succeeds and still gets the next commit_ts" {
	ts0="$(sh_probe_ts)"
	T="$MNT/.tx/empty"
	mkdir "$T"
	sh_commit "$T"
	sh_jq ".commit_ts == $((ts0 + 1)) and .ops == 0 and .txn == \"empty\"" "$T/.commit"
	sh_jq '.state == "committed"' "$T/.status"
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 2)) ]
}

@test "commit_ts increases by exactly one per commit across live writes, deletes, moves and transactions" {
	ts0="$(sh_probe_ts)"
	echo 1 >"$A/x"                                           # ts0+1
	[ "$(sh_xattr commit_ts "$A/x")" = $((ts0 + 1)) ]
	mkdir "$MNT/.tx/t1"
	echo 2 >"$MNT/.tx/t1/ns/a/y"
	sh_commit "$MNT/.tx/t1"                                  # ts0+2
	sh_jq ".commit_ts == $((ts0 + 2))" "$MNT/.tx/t1/.commit"
	rm "$A/x"                                                # ts0+3
	mv "$A/y" "$A/z"                                         # ts0+4
	[ "$(sh_xattr commit_ts "$A/z")" = $((ts0 + 4)) ]
	mkdir "$MNT/.tx/t2"
	sh_commit "$MNT/.tx/t2"                                  # ts0+5
	sh_jq ".commit_ts == $((ts0 + 5))" "$MNT/.tx/t2/.commit"
	touch "$A/t"                                             # ts0+6
	[ "$(sh_xattr commit_ts "$A/t")" = $((ts0 + 6)) ]
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 7)) ]
}

@test "a key's version goes up by one on every committed write and delete, live or transactional" {
	echo v1 >"$A/k"                               # version 1
	T="$MNT/.tx/w"
	mkdir "$T"
	echo v2 >"$T/ns/a/k"
	sh_commit "$T"                                # version 2
	[ "$(sh_xattr version "$A/k")" = 2 ]
	T="$MNT/.tx/d"
	mkdir "$T"
	rm "$T/ns/a/k"
	sh_commit "$T"                                # version 3 (delete)
	run sh_errno stat "$A/k"
	assert_output ENOENT
	echo v4 >"$A/k"                               # version 4
	[ "$(sh_xattr version "$A/k")" = 4 ]
}

@test "writing the same key twice in one transaction commits one op and one new version" {
	echo v1 >"$A/k"
	T="$MNT/.tx/twice"
	mkdir "$T"
	echo a >"$T/ns/a/k"
	echo b >"$T/ns/a/k"
	run cat "$T/ns/a/k"
	assert_output b
	sh_commit "$T"
	run cat "$A/k"
	assert_output b
	[ "$(sh_xattr version "$A/k")" = 2 ]
}

@test "versions and commit_ts continue after an unmount and remount, never reused" {
	echo v1 >"$A/k"
	echo v2 >"$A/k"
	rm "$A/k"
	ts0="$(sh_probe_ts)"
	sh_remount
	echo v4 >"$A/k"
	[ "$(sh_xattr version "$A/k")" = 4 ]
	[ "$(sh_xattr commit_ts "$A/k")" = $((ts0 + 1)) ]
	T="$MNT/.tx/after-restart"
	mkdir "$T"
	sh_jq ".begin_ts == $((ts0 + 1))" "$T/.status"
	sh_commit "$T"
	sh_jq ".commit_ts == $((ts0 + 2))" "$T/.commit"
}

@test "mv inside a transaction stages a move that is applied at commit" {
	echo payload >"$A/a"
	T="$MNT/.tx/mv"
	mkdir "$T"
	mv "$T/ns/a/a" "$T/ns/a/b"
	run cat "$T/ns/a/b"
	assert_output payload
	run sh_errno stat "$T/ns/a/a"
	assert_output ENOENT
	run cat "$A/a"
	assert_output payload
	run sh_errno stat "$A/b"
	assert_output ENOENT
	sh_commit "$T"
	run cat "$A/b"
	assert_output payload
	run sh_errno stat "$A/a"
	assert_output ENOENT
	[ "$(sh_xattr commit_ts "$A/b")" = "$(jq -r .commit_ts "$T/.commit")" ]
}

@test "mkdir -p and rm -r inside a transaction stage new directories and deletes" {
	mkdir -p "$A/old/sub"
	echo 1 >"$A/old/x"
	echo 2 >"$A/old/sub/y"
	T="$MNT/.tx/dirs"
	mkdir "$T"
	mkdir -p "$T/ns2/agent/step"
	echo s >"$T/ns2/agent/step/001"
	rm -r "$T/ns/a/old"
	run sh_errno stat "$T/ns/a/old"
	assert_output ENOENT
	run cat "$A/old/sub/y"
	assert_output 2
	run sh_errno stat "$MNT/ns2/agent/step"
	assert_output ENOENT
	run ls "$MNT"
	assert_output ns
	sh_commit "$T"
	run cat "$MNT/ns2/agent/step/001"
	assert_output s
	run sh_errno stat "$A/old/sub/y"
	assert_output ENOENT
	run sh_errno stat "$A/old/x"
	assert_output ENOENT
}

@test "rmdir of a transaction with staged files aborts it: nothing becomes visible and the name is free" {
	echo old >"$A/k"
	ts0="$(sh_probe_ts)"
	T="$MNT/.tx/abort"
	mkdir "$T"
	echo staged >"$T/ns/a/k"
	mkdir -p "$T/ns/a/deep/dir"
	echo n >"$T/ns/a/deep/dir/n"
	rmdir "$T"
	run sh_errno stat "$T"
	assert_output ENOENT
	run ls "$MNT/.tx"
	assert_output ''
	run cat "$A/k"
	assert_output old
	run sh_errno stat "$A/deep"
	assert_output ENOENT
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
	# the name is free again and the new transaction starts clean
	mkdir "$T"
	sh_jq '.state == "open" and .ops == 0' "$T/.status"
	run cat "$T/ns/a/k"
	assert_output old
}

@test "transactions that write different keys both commit" {
	mkdir "$MNT/.tx/a" "$MNT/.tx/b"
	echo A >"$MNT/.tx/a/ns/a/ka"
	echo B >"$MNT/.tx/b/ns/a/kb"
	sh_commit "$MNT/.tx/a"
	sh_commit "$MNT/.tx/b"
	run cat "$A/ka"
	assert_output A
	run cat "$A/kb"
	assert_output B
	sh_jq '.state == "committed"' "$MNT/.tx/b/.status"
}

@test "the second of two transactions writing the same key fails with ESTALE and .status names the key" {
	echo base >"$A/k"
	mkdir "$MNT/.tx/first" "$MNT/.tx/second"
	echo first >"$MNT/.tx/first/ns/a/k"
	echo second >"$MNT/.tx/second/ns/a/k"
	echo side >"$MNT/.tx/second/ns/a/side"
	sh_commit "$MNT/.tx/first"
	ts0="$(sh_probe_ts)"
	run sh_errno rename "$MNT/.tx/second/.commit.pending" "$MNT/.tx/second/.commit"
	assert_output ESTALE
	sh_jq '.state == "conflict" and .error == "ESTALE" and .key == "ns/a/k" and .txn == "second"' "$MNT/.tx/second/.status"
	run cat "$A/k"
	assert_output first
	run sh_errno stat "$A/side"
	assert_output ENOENT
	ts1="$(sh_probe_ts)"
	[ "$ts1" -eq $((ts0 + 1)) ]
	rmdir "$MNT/.tx/second"
}

@test "mv onto .commit prints Stale file handle when another commit won" {
	echo base >"$A/k"
	T="$MNT/.tx/loser"
	mkdir "$T"
	echo mine >"$T/ns/a/k"
	echo theirs >"$A/k"
	run mv "$T/.commit.pending" "$T/.commit"
	assert_failure
	assert_output --partial 'Stale file handle'
	run cat "$A/k"
	assert_output theirs
}

@test "a delete conflicts with a write committed outside after begin" {
	echo base >"$A/k"
	T="$MNT/.tx/del"
	mkdir "$T"
	rm "$T/ns/a/k"
	echo outside >"$A/k"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	sh_jq '.state == "conflict" and .error == "ESTALE" and .key == "ns/a/k"' "$T/.status"
	run cat "$A/k"
	assert_output outside
}

@test "writing a new key conflicts with the same key created outside after begin" {
	echo anchor >"$A/anchor"
	T="$MNT/.tx/born"
	mkdir "$T"
	echo mine >"$T/ns/a/n"
	echo theirs >"$A/n"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	sh_jq '.key == "ns/a/n"' "$T/.status"
	run cat "$A/n"
	assert_output theirs
}

@test "a key only read in the transaction and changed outside does not make the commit conflict" {
	echo base >"$A/read"
	T="$MNT/.tx/reader"
	mkdir "$T"
	run cat "$T/ns/a/read"
	assert_output base
	echo changed >"$A/read"
	echo derived >"$T/ns/a/out"
	sh_commit "$T"
	sh_jq '.state == "committed"' "$T/.status"
	run cat "$A/out"
	assert_output derived
}

@test "a stat of a staged file shows what its last writer staged, whichever process wrote it" {
	echo base >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	[ "$(stat -c %s "$T/ns/a/k")" = 5 ]
	printf 0123456789 >"$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 10 ]
	bash -c 'printf abc >"$1"' _ "$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 3 ]
	bash -c 'printf 0123456 >>"$1"' _ "$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 10 ]
	truncate -s 2 "$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 2 ]
	run cat "$T/ns/a/k"
	assert_output ab
	mv "$T/ns/a/k" "$T/ns/a/k2"
	[ "$(stat -c %s "$T/ns/a/k2")" = 2 ]
	run sh_errno stat "$T/ns/a/k"
	assert_output ENOENT
	echo new >"$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 4 ]
	sh_commit "$T"
	run cat "$A/k" "$A/k2"
	assert_output "$(printf 'new\nab')"
}

# fstat_across_commit FILE TXDIR: open FILE, commit TXDIR, then fstat the descriptor:
# prints OK or the errno name (what the kernel cached of the file before the commit must
# not outlive it).
fstat_across_commit() {
	python3 - "$1" "$2" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fstat(fd)
try:
    os.rename(sys.argv[2] + "/.commit.pending", sys.argv[2] + "/.commit")
except OSError as e:
    print("commit:" + errno.errorcode[e.errno], end=" ")
try:
    os.fstat(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}

@test "what the kernel cached of a transaction's files is dropped when its commit returns, or fails" {
	echo base >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	echo staged >"$T/ns/a/k"
	run fstat_across_commit "$T/ns/a/k" "$T"
	assert_output EROFS
	T="$MNT/.tx/c"
	mkdir "$T"
	echo staged >"$T/ns/a/k"
	echo theirs >"$A/k"
	run fstat_across_commit "$T/ns/a/k" "$T"
	assert_output "commit:ESTALE ESTALE"
}

@test "a write stages at write(): other processes see it before close, and the next write's failure puts back the value staged before" {
	sh_remount -o max_value_bytes=100
	echo base >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	echo before >"$T/ns/a/k"
	run python3 - "$T/ns/a/k" <<'PY'
import errno, os, subprocess, sys
path = sys.argv[1]
def seen():
    return subprocess.run(["cat", path], capture_output=True, text=True).stdout
fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
print("open:", repr(seen()))
os.write(fd, b"x" * 60)
print("write 60:", len(seen()))
try:
    os.write(fd, b"y" * 60)
except OSError as e:
    print("write 60 more:", errno.errorcode[e.errno])
print("after:", repr(seen()))
try:
    os.write(fd, b"z")
except OSError as e:
    print("write after:", errno.errorcode[e.errno])
os.close(fd)
print("closed:", repr(seen()))
PY
	assert_success
	assert_output "$(printf "%s\n" "open: ''" "write 60: 60" "write 60 more: EFBIG" \
		"after: 'before\\n'" "write after: EFBIG" "closed: 'before\\n'")"
	sh_commit "$T"
	run cat "$A/k"
	assert_output before
}

@test "a value written in pieces, with holes, overwrites and truncations, stages byte for byte" {
	echo base >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	run python3 - "$T/ns/a/k" "$SH_TMP/ref" <<'PY'
import hashlib, os, subprocess, sys
def gestures(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for i in range(400):
        os.write(fd, bytes([65 + i % 26]) * 509)
    os.pwrite(fd, b"start", 0)
    os.pwrite(fd, b"hole", 300000)
    os.ftruncate(fd, 250000)
    os.pwrite(fd, b"mid", 100000)
    os.ftruncate(fd, 260000)
    os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"tail")
    os.close(fd)
for p in sys.argv[1:]:
    gestures(p)
digests = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in sys.argv[1:]]
print(os.stat(sys.argv[1]).st_size, digests[0] == digests[1])
PY
	assert_success
	assert_output "260004 True"
	sh_commit "$T"
	cmp "$A/k" "$SH_TMP/ref"
}

# ops_of FILE: "op count" lines of the request counters in a copy of .metrics
ops_of() { sed -n 's/^statehouse_fuse_requests_total{op="\([a-z_]*\)"} \([0-9]*\)$/\1 \2/p' "$1"; }

# gesture_ops M0 M1 M2: "op n" for each operation a gesture made between the copies M1
# and M2 of .metrics, less what one copy costs (M1 - M0, nothing made in between)
gesture_ops() {
	join <(ops_of "$1") <(ops_of "$2") | join - <(ops_of "$3") |
		awk '{ d = ($4 - $3) - ($3 - $2); if (d) print $1, d }'
}

@test "writing a file of a transaction costs the kernel no flush and no getattr" {
	echo base >"$A/k"
	T="$MNT/.tx/t"
	mkdir "$T"
	cat "$T/ns/a/k" >/dev/null
	cp "$MNT/.metrics" "$SH_TMP/m0"
	cp "$MNT/.metrics" "$SH_TMP/m1"
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC); os.write(fd, b"v"); os.close(fd)' "$T/ns/a/k"
	cp "$MNT/.metrics" "$SH_TMP/m2"
	# the gesture's requests: (m2 - m1) less what one copy of .metrics costs (m1 - m0)
	run gesture_ops "$SH_TMP/m0" "$SH_TMP/m1" "$SH_TMP/m2"
	assert_success
	refute_line --partial flush
	refute_line --partial getattr
	assert_line "open 1"
	assert_line "write 1"
	sh_commit "$T"
	run cat "$A/k"
	assert_output v
}

@test "after a conflict, writes in that transaction fail with ESTALE until rmdir" {
	echo base >"$A/k"
	T="$MNT/.tx/poisoned"
	mkdir "$T"
	echo mine >"$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 5 ]
	echo theirs >"$A/k"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	# what the kernel cached of the view is dropped before the rename's answer
	run sh_errno stat "$T/ns/a/k"
	assert_output ESTALE
	run sh_errno write "$T/ns/a/other" v
	assert_output ESTALE
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	rmdir "$T"
	run sh_errno stat "$T"
	assert_output ENOENT
}

@test "-o txn_timeout_ms sets the default timeout; an expired transaction says expired and fails with ETIMEDOUT" {
	sh_remount -o txn_timeout_ms=3000
	echo base >"$A/k"
	T="$MNT/.tx/slow"
	mkdir "$T"
	run cat "$T/.timeout_ms"
	assert_output 3000
	sh_jq '.expires_in_ms >= 0 and .expires_in_ms <= 3000' "$T/.status"
	echo staged >"$T/ns/a/k"
	[ "$(stat -c %s "$T/ns/a/k")" = 7 ]
	sh_wait_until 30 sh_jq '.state == "expired"' "$T/.status"
	sh_jq '.txn == "slow"' "$T/.status"
	# the kernel caches the view no longer than until the deadline
	run sh_errno stat "$T/ns/a/k"
	assert_output ETIMEDOUT
	run sh_errno write "$T/ns/a/k2" v
	assert_output ETIMEDOUT
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ETIMEDOUT
	run cat "$A/k"
	assert_output base
	rmdir "$T"
	run sh_errno stat "$T"
	assert_output ENOENT
}

@test "writing milliseconds to .timeout_ms before the first op sets that transaction's timeout only" {
	echo anchor >"$A/anchor"
	T="$MNT/.tx/short"
	mkdir "$T" "$MNT/.tx/long"
	# cached until the default deadline, then the shorter timeout drops it
	[ "$(stat -c %s "$T/ns/a/anchor")" = 7 ]
	echo 1500 > "$T/.timeout_ms"
	run cat "$T/.timeout_ms"
	assert_output 1500
	sh_jq '.expires_in_ms >= 0 and .expires_in_ms <= 1500' "$T/.status"
	sh_wait_until 30 sh_jq '.state == "expired"' "$T/.status"
	run sh_errno write "$T/ns/a/k" v
	assert_output ETIMEDOUT
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ETIMEDOUT
	run sh_errno stat "$T/ns/a/anchor"
	assert_output ETIMEDOUT
	# the other transaction keeps the default and is still open
	sh_jq '.state == "open"' "$MNT/.tx/long/.status"
	run cat "$MNT/.tx/long/.timeout_ms"
	assert_output 30000
	echo v >"$MNT/.tx/long/ns/a/k"
	sh_commit "$MNT/.tx/long"
	run cat "$A/k"
	assert_output v
}

@test "the reaper expires a transaction nobody touches and frees its staged ops" {
	echo base >"$A/k"
	T="$MNT/.tx/forgotten"
	mkdir "$T"
	echo 2000 >"$T/.timeout_ms"
	echo staged >"$T/ns/a/k"
	# wait on the clock, without touching anything under .tx, until well past the deadline
	end=$((SECONDS + 5))
	while ((SECONDS < end)); do sleep 0.2; done
	# ops == 0: the staged ops were freed by the reaper, not when .status was read
	sh_jq '.state == "expired" and .txn == "forgotten" and .ops == 0' "$T/.status"
	run cat "$A/k"
	assert_output base
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ETIMEDOUT
}
