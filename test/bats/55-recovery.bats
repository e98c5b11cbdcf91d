#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Recovery is snapshot + replay: snapshots every snapshot_interval commits and at a
# clean stop, the newest snapshot_keep kept; a start loads the newest valid snapshot and
# replays the events after it, says so with counts, and falls back to an older snapshot or
# the whole log; --verify compares both; a damaged database refuses to start; every start is
# a row of the starts table; .metrics counts exactly; a snapshot that hits a full disk leaves
# the older ones intact. Snapshots are taken by the reaper (every 50 ms), so tests wait for
# the file with a deadline after the N-th commit and commit nothing more meanwhile.

load helper

setup() {
	load_libs
	sh_setup_dirs
	SMALL="$SH_TMP/small"
	SNAPS="$DATA/snapshots"
	A="$MNT/default/agent-1"
	LOOPS=()
}

teardown() {
	local rc=0 pid
	for pid in "${LOOPS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	sh_umount || rc=1
	if sh_is_mounted "$MNT"; then umount -l "$MNT" 2>/dev/null || true; fi
	if sh_is_mounted "$SMALL"; then umount "$SMALL" || umount -l "$SMALL" || rc=1; fi
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# snap TS: the path of the snapshot at commit TS.
snap() { printf '%s/snap-%020d.bin' "$SNAPS" "$1"; }

# snaps: the commit_ts of every snapshot file, oldest first, on one line ("" if none).
snaps() {
	local f out=()
	for f in "$SNAPS"/snap-*.bin; do
		[ -e "$f" ] || continue
		f=${f##*/snap-}
		out+=("$((10#${f%.bin}))")
	done
	echo "${out[*]}"
}

# wait_snap TS: wait (deadline 20 s) until the reaper has written the snapshot at TS.
wait_snap() {
	sh_wait_until 20 test -f "$(snap "$1")" || fail "no snapshot at commit $1; have: $(snaps); log: $(cat "$LOG")"
}

# writes FROM TO: one direct write (one commit) per key k<FROM>..k<TO> below $A.
writes() {
	local i
	mkdir -p "$A"
	for ((i = $1; i <= $2; i++)); do echo "value $i" >"$A/k$i"; done
}

# last_recovery: the newest "recovery:" line of the daemon log.
last_recovery() { grep -F 'statehoused: recovery:' "$LOG" | tail -n 1; }

# assert_recovery REGEX: the newest recovery line matches REGEX (ms figures are \d+ there).
assert_recovery() {
	local line
	line=$(last_recovery)
	[[ "$line" =~ ^statehoused:\ recovery:\ $1$ ]] || fail "recovery line: '$line', expected: '$1'"
}

MS='[0-9]+ ms'

# verify: run statehoused --verify on the (stopped) DATADIR; sets $status and $output.
verify() {
	run "$STATEHOUSED" --verify "$DATA"
}

# metric NAME: the value of one metric in MNT/.metrics.
metric() {
	awk -v n="$1" '$1 == n { print $2; found = 1 } END { exit !found }' "$MNT/.metrics" ||
		{ echo "no metric $1 in .metrics" >&2; return 1; }
}

# assert_metric NAME VALUE
assert_metric() {
	local v
	v=$(metric "statehouse_$1") || fail "no metric statehouse_$1: $(cat "$MNT/.metrics")"
	[ "$v" = "$2" ] || fail "statehouse_$1 is $v, expected $2"
}

# flip_byte FILE OFFSET: invert every bit of one byte in place.
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\x$(printf %02x $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# starts: the starts table as "clean_prev snapshot_ts events_replayed head_ts" lines.
starts() {
	sqlite3 -readonly "$DATA/statehouse.db" \
		'SELECT clean_prev, snapshot_ts, events_replayed, head_ts FROM starts ORDER BY id'
}

@test "a snapshot is written every snapshot_interval commits and only the newest snapshot_keep remain" {
	sh_mount -o snapshot_interval=4,snapshot_keep=2
	writes 1 3
	[ "$(snaps)" = "" ] || fail "a snapshot before 4 commits: $(snaps)"
	writes 4 4
	wait_snap 4
	grep -qx 'statehoused: snapshot at commit 4 written (4 keys; [0-9]* ms under the read lock, [0-9]* ms in all)' "$LOG" ||
		fail "no log line for the snapshot at 4: $(cat "$LOG")"
	assert_metric commits_since_snapshot 0
	writes 5 5
	assert_metric commits_since_snapshot 1
	writes 6 8
	wait_snap 8
	[ "$(snaps)" = "4 8" ]
	writes 9 12
	wait_snap 12
	[ "$(snaps)" = "8 12" ] || fail "snapshots kept: $(snaps)"
	# Nothing else is left in the directory (no temporary files).
	run ls -A "$SNAPS"
	assert_output "$(printf 'snap-%020d.bin\nsnap-%020d.bin' 8 12)"
	assert_metric head_commit_ts 12
	assert_metric commits_since_snapshot 0
}

@test "a clean unmount writes one snapshot at the head and the next start loads it and replays nothing" {
	sh_mount
	writes 1 7
	rm "$A/k3"
	[ "$(snaps)" = "" ] || fail "snapshot before the unmount with the default interval: $(snaps)"
	before=$(sh_dump_tree "$MNT")
	sh_umount
	[ "$(snaps)" = "8" ] || fail "snapshots after a clean unmount: $(snaps)"
	grep -qx 'statehoused: snapshot at commit 8 written (7 keys; [0-9]* ms under the read lock, [0-9]* ms in all)' "$LOG" ||
		fail "no log line for the snapshot at 8 (7 keys, the deleted one included): $(cat "$LOG")"

	sh_mount
	assert_recovery "snapshot at commit 8 loaded \(7 keys\) in $MS; replayed 0 events \(0 ops\) in $MS; ready at commit 8"
	diff <(echo "$before") <(sh_dump_tree "$MNT")
	run grep -c 'did not stop cleanly' "$LOG"
	assert_output 0
	# Nothing committed since: the next clean unmount writes no second snapshot.
	sh_umount
	[ "$(snaps)" = "8" ] || fail "snapshots: $(snaps)"
	run grep -c 'snapshot at commit 8 written' "$LOG"
	assert_output 1
}

@test "with snapshot_interval=0 no snapshot is ever written, not even at a clean unmount" {
	sh_mount -o snapshot_interval=0
	writes 1 5
	sh_umount
	[ "$(snaps)" = "" ] || fail "snapshots with snapshot_interval=0: $(snaps)"
	sh_mount -o snapshot_interval=0
	assert_recovery "no snapshot; replayed 5 events \(5 ops\) in $MS; ready at commit 5"
}

@test "after SIGKILL recovery loads the newest snapshot and replays exactly the events after it" {
	sh_mount -o snapshot_interval=5
	writes 1 5
	wait_snap 5
	# Three events after the snapshot: a write, a transaction of two writes and a delete,
	# an empty transaction.
	echo changed >"$A/k1"
	T="$MNT/.tx/job"
	mkdir "$T"
	echo new >"$T/default/agent-1/k6"
	echo changed >"$T/default/agent-1/k2"
	rm "$T/default/agent-1/k3"
	sh_commit "$T"
	rmdir "$T"
	mkdir "$MNT/.tx/empty"
	sh_commit "$MNT/.tx/empty"
	rmdir "$MNT/.tx/empty"
	before=$(sh_dump_tree "$MNT")
	assert_metric head_commit_ts 8
	assert_metric commits_since_snapshot 3

	sh_restart -o snapshot_interval=5

	assert_recovery "snapshot at commit 5 loaded \(5 keys\) in $MS; replayed 3 events \(4 ops\) in $MS; ready at commit 8"
	run grep -c 'statehoused: warning: the previous run did not stop cleanly' "$LOG"
	assert_output 1
	diff <(echo "$before") <(sh_dump_tree "$MNT")
	assert_metric last_recovery_replayed_events 3
	assert_metric head_commit_ts 8
	assert_metric commits_since_snapshot 3
	run starts
	assert_output "$(printf '1|0|0|0\n0|5|3|8')"
	sh_umount
	verify
	assert_success
	assert_output --regexp 'verify: ok: 6 keys at commit 8 agree \(snapshot at commit 8 '
}

@test "a damaged newest snapshot is skipped and the older one gives the same state" {
	sh_mount -o snapshot_interval=3,snapshot_keep=3
	writes 1 3
	wait_snap 3
	writes 4 6
	wait_snap 6
	writes 7 8
	rm "$A/k2"
	before=$(sh_dump_tree "$MNT")
	sh_umount
	[ "$(snaps)" = "3 6 9" ] || fail "snapshots: $(snaps)"
	f=$(snap 9)
	flip_byte "$f" $(($(stat -c %s "$f") / 2))

	verify
	assert_success
	assert_output --partial "skipping damaged snapshot '$f' (checksum or length)"
	assert_output --partial 'verify: ok: 8 keys at commit 9 agree (snapshot at commit 6 '

	sh_mount -o snapshot_interval=3,snapshot_keep=3
	grep -qF "statehoused: warning: skipping damaged snapshot '$f' (checksum or length)" "$LOG" ||
		fail "no warning about the damaged snapshot: $(cat "$LOG")"
	assert_recovery "snapshot at commit 6 loaded \(6 keys\) in $MS; replayed 3 events \(3 ops\) in $MS; ready at commit 9"
	diff <(echo "$before") <(sh_dump_tree "$MNT")
	echo after >"$A/k2"
	[ "$(sh_xattr version "$A/k2")" -eq 3 ]
	[ "$(sh_xattr commit_ts "$A/k2")" -eq 10 ]
}

@test "a truncated snapshot and a damaged older one fall back to the oldest snapshot" {
	sh_mount -o snapshot_interval=2,snapshot_keep=3
	writes 1 2
	wait_snap 2
	writes 3 4
	wait_snap 4
	writes 5 5
	before=$(sh_dump_tree "$MNT")
	sh_umount
	[ "$(snaps)" = "2 4 5" ] || fail "snapshots: $(snaps)"
	truncate -s -1 "$(snap 5)"
	flip_byte "$(snap 4)" 40
	sh_mount -o snapshot_interval=2,snapshot_keep=3
	run grep -c 'statehoused: warning: skipping damaged snapshot' "$LOG"
	assert_output 2
	assert_recovery "snapshot at commit 2 loaded \(2 keys\) in $MS; replayed 3 events \(3 ops\) in $MS; ready at commit 5"
	diff <(echo "$before") <(sh_dump_tree "$MNT")
}

@test "with every snapshot damaged or removed recovery replays the whole log to the same state" {
	sh_mount -o snapshot_interval=4
	writes 1 4
	wait_snap 4
	writes 5 5
	rm "$A/k1"
	echo again >"$A/k1"
	before=$(sh_dump_tree "$MNT")
	sh_umount
	[ "$(snaps)" = "4 7" ] || fail "snapshots: $(snaps)"

	# Both damaged: the whole log.
	flip_byte "$(snap 4)" 30
	flip_byte "$(snap 7)" 30
	sh_mount -o snapshot_interval=4
	assert_recovery "no snapshot; replayed 7 events \(7 ops\) in $MS; ready at commit 7"
	diff <(echo "$before") <(sh_dump_tree "$MNT")
	sh_kill9

	# All removed: the whole log again.
	rm -r "$SNAPS"
	verify
	assert_success
	assert_output --partial 'verify: ok: 5 keys at commit 7 agree'
	sh_mount -o snapshot_interval=4
	assert_recovery "no snapshot; replayed 7 events \(7 ops\) in $MS; ready at commit 7"
	diff <(echo "$before") <(sh_dump_tree "$MNT")
	[ "$(sh_xattr version "$A/k1")" -eq 3 ]
	echo more >"$A/k1"
	[ "$(sh_xattr version "$A/k1")" -eq 4 ]
	[ "$(sh_xattr commit_ts "$A/k1")" -eq 8 ]
}

@test "per-key versions and commit_ts continue after recovery from a snapshot, deleted keys included" {
	sh_mount -o snapshot_interval=6
	mkdir -p "$A"
	echo 1 >"$A/gone"
	echo 2 >"$A/gone"
	rm "$A/gone"
	echo 1 >"$A/kept"
	echo 2 >"$A/kept"
	echo x >"$A/other"
	wait_snap 6
	sh_umount
	[ "$(snaps)" = "6" ] || fail "snapshots: $(snaps)"
	# Replaying nothing: all the state, the deleted key's version too, comes from the snapshot.
	sh_mount -o snapshot_interval=6
	assert_recovery "snapshot at commit 6 loaded \(3 keys\) in $MS; replayed 0 events \(0 ops\) in $MS; ready at commit 6"
	run sh_errno stat "$A/gone"
	assert_output ENOENT
	echo back >"$A/gone"
	[ "$(sh_xattr version "$A/gone")" -eq 4 ]
	[ "$(sh_xattr commit_ts "$A/gone")" -eq 7 ]
	echo 3 >"$A/kept"
	[ "$(sh_xattr version "$A/kept")" -eq 3 ]
	[ "$(sh_xattr commit_ts "$A/kept")" -eq 8 ]
	[ "$(sh_xattr version "$A/other")" -eq 1 ]
	[ "$(sh_xattr commit_ts "$A/other")" -eq 6 ]
	# The past below the snapshot is still there (it lives in the log).
	run cat "$MNT/.at/2/default/agent-1/gone"
	assert_output 2
}

@test "--verify passes after SIGKILLs during a commit loop that crosses snapshots" {
	local cycle w i n ok
	sh_mount -o snapshot_interval=7
	for cycle in 1 2 3; do
		rm -f "$SH_TMP/ack.w1" "$SH_TMP/ack.w2"
		sh_start_commit_loops ".$cycle"
		sh_wait_acks 15 || fail "cycle $cycle: the writers did not commit 15 times each within 60 s: $(cat "$SH_TMP/loop.log")"
		sh_kill9
		for i in "${LOOPS[@]}"; do wait "$i" || true; done
		LOOPS=()
		[ -n "$(snaps)" ] || fail "cycle $cycle: no snapshot was written during the loop"

		verify
		assert_success
		assert_output --regexp "verify: ok: [0-9]+ keys at commit [0-9]+ agree \(snapshot at commit [1-9][0-9]* "

		sh_mount -o snapshot_interval=7
		assert_recovery "snapshot at commit [0-9]+ loaded \([0-9]+ keys\) in $MS; replayed [0-9]+ events \([0-9]+ ops\) in $MS; ready at commit [0-9]+"
		for w in w1 w2; do
			a=$(cat "$MNT/default/$w.$cycle/a")
			[ "$a" = "$(cat "$MNT/default/$w.$cycle/c")" ] || fail "cycle $cycle $w: a commit applied in part"
			read -r last _ < <(tail -n 1 "$SH_TMP/ack.$w")
			[ "$a" -ge "$last" ] || fail "cycle $cycle $w: acknowledged commit $last lost (tree holds $a)"
		done
	done
	run starts
	[ "$(echo "$output" | cut -d '|' -f 1 | tr '\n' ' ')" = "1 0 0 0 " ] || fail "starts: $output"
	assert_metric recoveries_total 4
	assert_metric unclean_starts_total 3
}

@test "--verify fails with exit 1 and names the key when a well-sealed snapshot disagrees with the log" {
	sh_mount
	writes 1 2
	echo right >"$A/k"
	sh_umount
	f=$(snap 3)
	[ -f "$f" ]
	# Rewrite the value and reseal: the CRC and the end marker are valid, the content wrong.
	"$SH_PYTHON" - "$f" <<-'EOF'
		import sys, zlib
		p = sys.argv[1]
		m = bytearray(open(p, "rb").read())
		i = m.index(b"right\n")
		m[i:i + 6] = b"wrong\n"
		end = len(m) - len(b"SHSNAPEND")
		crc = zlib.crc32(bytes(m[8:32]), zlib.crc32(bytes(m[32:end - 4])))
		m[end - 4:end] = crc.to_bytes(4, sys.byteorder)
		open(p, "wb").write(m)
	EOF
	verify
	assert_failure 1
	assert_output --partial "verify: 'default/agent-1/k' differs"
	refute_output --partial 'verify: ok'
}

@test "a damaged database file refuses to start with integrity check failed" {
	sh_mount
	mkdir -p "$A"
	for ((i = 0; i < 400; i++)); do printf 'value %0100d\n' "$i" >"$A/key-$i"; done
	sh_umount
	db="$DATA/statehouse.db"
	[ ! -s "$db-wal" ] || fail "the WAL was not checkpointed at the clean stop"
	pages=$(($(stat -c %s "$db") / 4096))
	[ "$pages" -ge 20 ] || fail "database too small to damage a middle page: $pages pages"
	# Overwrite the middle page with bytes no b-tree page begins with.
	head -c 4096 /dev/zero | tr '\0' '\125' |
		dd of="$db" bs=4096 seek=$((pages / 2)) conv=notrunc status=none

	run timeout 30 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) 3>&-
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "daemon status $status: $output"
	assert_output --partial "cannot open store '$db': integrity check failed"
	sh_is_mounted "$MNT" && fail "a damaged database was mounted"
	verify
	assert_failure 1
	assert_output --partial 'integrity check failed'
}

@test "the starts table records every start and clean_prev=0 after a SIGKILL" {
	sh_mount
	writes 1 2
	sh_umount
	sh_mount
	writes 3 3
	sh_kill9
	sh_mount
	sh_kill9
	sh_mount
	run starts
	assert_output "$(printf '1|0|0|0\n1|2|0|2\n0|2|1|3\n0|2|1|3')"
	assert_metric recoveries_total 4
	assert_metric unclean_starts_total 2
	assert_metric last_recovery_replayed_events 1
	run grep -c 'statehoused: warning: the previous run did not stop cleanly' "$LOG"
	assert_output 2
	sh_umount
	sh_mount
	run sqlite3 -readonly "$DATA/statehouse.db" 'SELECT count(*), sum(clean_prev) FROM starts'
	assert_output '5|3'
	assert_metric recoveries_total 5
	assert_metric unclean_starts_total 2
	assert_metric last_recovery_replayed_events 0
}

@test ".metrics passes promtool and counts writes, commits, conflicts, aborts and expiries exactly" {
	sh_mount
	run promtool check metrics <"$MNT/.metrics"
	assert_success
	assert_metric recoveries_total 1
	assert_metric unclean_starts_total 0
	assert_metric head_commit_ts 0
	assert_metric commit_latency_seconds_count 0

	# 3 direct writes.
	writes 1 3
	# 1 committed transaction: two writes and a delete.
	T="$MNT/.tx/good"
	mkdir "$T"
	echo t >"$T/default/agent-1/k1"
	echo t >"$T/default/agent-1/k4"
	rm "$T/default/agent-1/k2"
	sh_commit "$T"
	rmdir "$T"
	# 1 conflict: k3 is written directly after the transaction staged it.
	C="$MNT/.tx/conflict"
	mkdir "$C"
	echo c >"$C/default/agent-1/k3"
	echo direct >"$A/k3"
	run sh_errno rename "$C/.commit.pending" "$C/.commit"
	assert_output ESTALE
	# 1 abort.
	mkdir "$MNT/.tx/aborted"
	echo a >"$MNT/.tx/aborted/default/agent-1/k5"
	rmdir "$MNT/.tx/aborted"
	# 1 expiry.
	E="$MNT/.tx/expired"
	mkdir "$E"
	echo 100 >"$E/.timeout_ms"
	sh_wait_until 30 sh_jq '.state == "expired"' "$E/.status"
	# 2 open transactions.
	mkdir "$MNT/.tx/open1" "$MNT/.tx/open2"
	# 2 reads of live keys.
	cat "$A/k1" "$A/k3" >/dev/null

	run promtool check metrics <"$MNT/.metrics"
	assert_success
	assert_output ""
	assert_metric transactions_begun_total 6
	assert_metric transactions_committed_total 1
	assert_metric transactions_aborted_total 1
	assert_metric transactions_expired_total 1
	assert_metric transactions_conflicted_total 1
	assert_metric autocommits_total 4
	assert_metric commits_failed_total 1
	assert_metric ops_written_total 6
	assert_metric ops_deleted_total 1
	assert_metric key_reads_total 2
	assert_metric open_transactions 2
	assert_metric head_commit_ts 5
	assert_metric commits_since_snapshot 5
	# One after another, each commit is a store write (one fsync) of its own.
	assert_metric commit_batches_total 5
	assert_metric commit_batched_total 5
	assert_metric recoveries_total 1
	assert_metric unclean_starts_total 0
	assert_metric last_recovery_replayed_events 0
	# Every commit request completes into the histogram, the refused one too.
	assert_metric commit_latency_seconds_count 6
	assert_metric 'commit_latency_seconds_bucket{le="+Inf"}' 6
	assert_metric database_bytes "$(stat -c %s "$DATA/statehouse.db")"
	assert_metric wal_bytes "$(stat -c %s "$DATA/statehouse.db-wal")"
	[ "$(metric statehouse_resident_memory_bytes)" -gt 0 ]

	rmdir "$MNT/.tx/open1"
	assert_metric open_transactions 1
	assert_metric transactions_aborted_total 2

	sh_restart
	assert_metric recoveries_total 2
	assert_metric unclean_starts_total 1
	assert_metric last_recovery_replayed_events 5
	assert_metric head_commit_ts 5
	assert_metric open_transactions 0
	assert_metric transactions_begun_total 0
	sh_restart
	assert_metric recoveries_total 3
	assert_metric unclean_starts_total 2
	run promtool check metrics <"$MNT/.metrics"
	assert_success
	assert_output ""
}

# req FILE OP: the requests of operation OP counted in a copy FILE of .metrics.
req() {
	awk -v n="statehouse_fuse_requests_total{op=\"$2\"}" '$1 == n { print $2; f = 1 } END { exit !f }' "$1" ||
		fail "no request counter for $2 in .metrics: $(cat "$1")"
}

@test ".metrics counts the FUSE requests of each operation: a cat of a key adds its open and read" {
	sh_mount
	writes 1 1
	run promtool check metrics <"$MNT/.metrics"
	assert_success
	assert_output ""
	# Each copy of .metrics is one open (counted before the copy is made) and its reads
	# (counted in the next copy).
	cp "$MNT/.metrics" "$SH_TMP/m0"
	grep -qF 'statehouse_fuse_requests_total{op="open"}' "$SH_TMP/m0" ||
		fail "no statehouse_fuse_requests_total in .metrics: $(cat "$SH_TMP/m0")"
	cp "$MNT/.metrics" "$SH_TMP/m1"
	cat "$A/k1" >/dev/null
	mkdir "$MNT/.tx/t"
	cp "$MNT/.metrics" "$SH_TMP/m2"
	[ $(($(req "$SH_TMP/m1" open) - $(req "$SH_TMP/m0" open))) -eq 1 ]
	[ $(($(req "$SH_TMP/m2" open) - $(req "$SH_TMP/m1" open))) -eq 2 ]
	reads_copy=$(($(req "$SH_TMP/m1" read) - $(req "$SH_TMP/m0" read)))
	[ "$reads_copy" -ge 1 ]
	[ $(($(req "$SH_TMP/m2" read) - $(req "$SH_TMP/m1" read))) -ge $((reads_copy + 1)) ]
	[ $(($(req "$SH_TMP/m2" mkdir) - $(req "$SH_TMP/m1" mkdir))) -eq 1 ]
	[ "$(req "$SH_TMP/m2" write)" -ge 1 ]
	# Every operation has its series, 0 included.
	for op in lookup forget batch_forget getattr setattr mkdir unlink rmdir rename open read \
		write flush release fsync opendir readdir releasedir statfs setxattr getxattr \
		listxattr removexattr create poll fallocate symlink mknod link; do
		req "$SH_TMP/m2" "$op" >/dev/null
	done
	[ "$(req "$SH_TMP/m2" symlink)" = 0 ]
}

@test "a snapshot that fails on a full disk leaves the older ones intact and is retried once there is room" {
	mkdir -p "$SMALL"
	mount -t tmpfs -o "size=16m,mode=0755" statehouse-test "$SMALL" ||
		sh_skip "cannot mount a tmpfs here (the test needs root)"
	DATA="$SMALL/data"
	SNAPS="$DATA/snapshots"
	sh_mount -o snapshot_interval=3,snapshot_keep=2
	mkdir -p "$A"
	# A state of ~2 MB, so a snapshot needs far more room than a small commit.
	for i in 1 2 3; do head -c 700000 /dev/urandom >"$A/big$i"; done
	wait_snap 3
	writes 4 6
	wait_snap 6
	sums=$(sha256sum "$(snap 3)" "$(snap 6)")
	before=$(sh_dump_tree "$MNT")

	# Leave ~400 KB: room for a few small commits in the WAL, none for a snapshot.
	avail=$(($(stat -f -c '%a * %S' "$SMALL")))
	head -c $((avail - 400 * 1024)) /dev/zero >"$SMALL/filler"
	writes 7 9
	sh_wait_until 20 grep -qF "cannot write snapshot '$(snap 9)': No space left on device" "$LOG" ||
		fail "no failed snapshot at 9: $(cat "$LOG")"
	[ "$(snaps)" = "3 6" ] || fail "snapshots after the failure: $(snaps)"
	diff <(echo "$sums") <(sha256sum "$(snap 3)" "$(snap 6)")
	run ls -A "$SNAPS"
	assert_output "$(printf 'snap-%020d.bin\nsnap-%020d.bin' 3 6)"
	run cat "$A/k7"
	assert_output "value 7"

	# Room again: the snapshot is retried without a restart, commits work.
	rm "$SMALL/filler"
	wait_snap 9
	[ "$(snaps)" = "6 9" ] || fail "snapshots after the retry: $(snaps)"
	writes 10 10
	[ "$(sh_xattr commit_ts "$A/k10")" -eq 10 ]
	after=$(sh_dump_tree "$MNT")
	sh_umount
	verify
	assert_success
	assert_output --partial 'verify: ok: 10 keys at commit 10 agree (snapshot at commit 10 '
	sh_mount -o snapshot_interval=3,snapshot_keep=2
	diff <(echo "$after") <(sh_dump_tree "$MNT")
}

@test "a temporary file left by a snapshot killed mid-write is not counted against snapshot_keep" {
	sh_mount -o snapshot_interval=3,snapshot_keep=2
	writes 1 3
	wait_snap 3
	writes 4 5
	sh_kill9
	# What a SIGKILL during the write of a snapshot at 5 leaves behind (the reaper takes
	# one at whatever head it finds once snapshot_interval commits have passed).
	head -c 100 "$(snap 3)" >"$(snap 5).tmp"
	sh_mount -o snapshot_interval=3,snapshot_keep=2
	writes 6 6
	wait_snap 6
	# The newest two real snapshots remain: the stale file is not one of them.
	[ "$(snaps)" = "3 6" ] || fail "snapshots: $(snaps) (files: $(ls -A "$SNAPS" | tr '\n' ' '))"
	writes 7 9
	wait_snap 9
	[ "$(snaps)" = "6 9" ] || fail "snapshots: $(snaps) (files: $(ls -A "$SNAPS" | tr '\n' ' '))"
	# Snapshot files are all that is left (the stale temporary file is gone).
	run ls -A "$SNAPS"
	assert_output "$(printf 'snap-%020d.bin\nsnap-%020d.bin' 6 9)"
}

# fingerprint: every file of DATA with its size and checksum, one per line; SQLite's
# shared-memory index (-shm) and the daemon's lock file are scratch, not state.
fingerprint() {
	(cd "$DATA" && find . -type f ! -name '*-shm' ! -name statehoused.lock -print0 |
		sort -z | xargs -0 -r sha256sum)
}

# refused_start: start the daemon on DATA; it must exit 1 without mounting ($output: its log).
refused_start() {
	run timeout 30 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) 3>&-
	[ "$status" -eq 1 ] || fail "daemon status $status: $output"
	# A killed daemon's dead mount may stay (it answers ENOTCONN); a live one answers.
	if stat "$MNT/.health" >/dev/null 2>&1; then fail "a log that lost commits was mounted"; fi
}

# recover: statehoused --recover-from-snapshot DATA; sets $status and $output.
recover() {
	run "$STATEHOUSED" --recover-from-snapshot "$DATA"
}

# recoveries: the recoveries table as "log_head snapshot_ts acknowledged new_head" lines.
recoveries() {
	sqlite3 -readonly "$DATA/statehouse.db" \
		'SELECT log_head, snapshot_ts, acknowledged, new_head FROM recoveries ORDER BY id'
}

@test "an empty or missing log with snapshots present refuses to start, says what it found and changes no file" {
	sh_mount -o snapshot_interval=2
	writes 1 4
	sh_umount
	[ -f "$(snap 4)" ] || fail "no snapshot at the clean stop: $(snaps)"
	: >"$DATA/statehouse.db"
	rm -f "$DATA/statehouse.db-wal" "$DATA/statehouse.db-shm"
	before=$(fingerprint)
	refused_start
	assert_output --partial "statehoused: error: cannot start: the log is empty, but acknowledged commits reach commit 4 (newest snapshot: commit 4, last clean stop: commit 4, marked while running: commit 4): commits are missing from the log"
	assert_output --partial "nothing was changed in '$DATA'; stop here and restore a backup into a new data dir, or accept the loss with 'statehoused --recover-from-snapshot $DATA'"
	diff <(echo "$before") <(fingerprint)

	rm "$DATA/statehouse.db"
	before=$(fingerprint)
	refused_start
	assert_output --partial "cannot start: the log is missing, but acknowledged commits reach commit 4"
	diff <(echo "$before") <(fingerprint)
	[ ! -e "$DATA/statehouse.db" ] || fail "the refused start created a log"
	# --verify refuses it as well, and changes nothing either.
	verify
	assert_failure 1
	diff <(echo "$before") <(fingerprint)
}

@test "--recover-from-snapshot rebuilds a missing log from the newest snapshot and records that later commits are lost" {
	sh_mount -o snapshot_interval=3
	writes 1 3
	wait_snap 3
	rm "$A/k2"
	echo again >"$A/k1"
	mkdir "$A/dir"
	wait_snap 6
	chmod 640 "$A/k3"
	echo four >"$A/k4"
	echo five >"$A/dir/k5"
	wait_snap 9
	state=$(sh_dump_tree "$MNT")
	writes 10 11
	sh_kill9
	rm "$DATA/statehouse.db" "$DATA/statehouse.db-wal" "$DATA/statehouse.db-shm"
	refused_start
	assert_output --partial "cannot start: the log is missing, but acknowledged commits reach commit 9"

	recover
	assert_success
	assert_output --partial "statehoused: recovered: the log ended at commit 0; commits 1..9 were rebuilt from the snapshot at commit 9"
	assert_output --partial "statehoused: warning: commits after 9, if there were any, are lost; new commits start at 10"
	run recoveries
	assert_output "0|9|9|9"

	sh_mount -o snapshot_interval=3
	diff <(echo "$state") <(sh_dump_tree "$MNT")
	[ "$(sh_xattr version "$A/k1")" -eq 2 ]
	[ "$(sh_xattr commit_ts "$A/k1")" -eq 5 ]
	[ "$(stat -c %a "$A/k3")" = 640 ]
	[ -d "$A/dir" ]
	echo new >"$A/k10"
	[ "$(sh_xattr commit_ts "$A/k10")" -eq 10 ]
	echo third >"$A/k1"
	[ "$(sh_xattr version "$A/k1")" -eq 3 ]
	sh_umount
	# A second run finds nothing missing and changes nothing.
	before=$(fingerprint)
	recover
	assert_success
	assert_output --partial "nothing to recover: the log ends at commit 11 and holds every acknowledged commit"
	diff <(echo "$before") <(fingerprint)
	verify
	assert_success
}

@test "a log replaced by an older copy refuses to start below the last clean stop, and recovery accepts the loss" {
	sh_mount -o snapshot_interval=0
	writes 1 3
	sh_umount
	cp "$DATA/statehouse.db" "$SH_TMP/old.db"
	sh_mount -o snapshot_interval=0
	writes 4 6
	sh_umount
	[ "$(snaps)" = "" ] || fail "snapshots: $(snaps)"
	cp "$SH_TMP/old.db" "$DATA/statehouse.db"
	before=$(fingerprint)
	refused_start
	assert_output --partial "cannot start: the log ends at commit 3, but acknowledged commits reach commit 6 (newest snapshot: commit 0, last clean stop: commit 6, marked while running: commit 6)"
	diff <(echo "$before") <(fingerprint)

	recover
	assert_success
	assert_output --partial "statehoused: recovered: the log ends at commit 3 and no snapshot is newer"
	assert_output --partial "statehoused: warning: commits 4..6 (and any after them) are lost; new commits start at 4"
	run recoveries
	assert_output "3|0|6|3"
	sh_mount -o snapshot_interval=0
	run sh_errno stat "$A/k4"
	assert_output ENOENT
	echo other >"$A/x4"
	[ "$(sh_xattr commit_ts "$A/x4")" -eq 4 ]
	sh_umount
	verify
	assert_success
}

@test "a snapshot ahead of the log refuses the start and stays as it is" {
	sh_mount -o snapshot_interval=0
	writes 1 3
	sh_umount
	# The log loses its tail (here: an older copy) while a newer snapshot survives.
	cp "$DATA/statehouse.db" "$SH_TMP/old.db"
	sh_mount
	writes 4 6
	sh_umount
	[ "$(snaps)" = "6" ] || fail "snapshots: $(snaps)"
	cp "$SH_TMP/old.db" "$DATA/statehouse.db"
	rm -f "$DATA/statehouse.db-wal" "$DATA/statehouse.db-shm" "$DATA/statehouse.marks"
	before=$(fingerprint)
	refused_start
	assert_output --partial "cannot start: the log ends at commit 3, but acknowledged commits reach commit 6 (newest snapshot: commit 6, last clean stop: commit 0, marked while running: commit 0)"
	diff <(echo "$before") <(fingerprint)
	run ls -A "$SNAPS"
	assert_output "$(printf 'snap-%020d.bin' 6)"
	verify
	assert_failure 1
	diff <(echo "$before") <(fingerprint)
}

@test "a write-ahead log cut after a crash refuses to start" {
	sh_mount -o snapshot_interval=3
	writes 1 3
	wait_snap 3
	# The marks follow the snapshot file.
	sh_wait_until 20 grep -qx 'log_head 3' "$DATA/statehouse.marks" || fail "marks: $(cat "$DATA/statehouse.marks")"
	wal=$(sed -n 's/^wal_bytes //p' "$DATA/statehouse.marks")
	[ "$wal" -gt 4096 ] || fail "marks: $(cat "$DATA/statehouse.marks")"
	writes 4 5
	sh_kill9
	truncate -s $((wal - 4096)) "$DATA/statehouse.db-wal"
	before=$(fingerprint)
	refused_start
	assert_output --partial "cannot start: the write-ahead log is $((wal - 4096)) bytes, shorter than the $wal it had at commit 3, but acknowledged commits reach commit 3"
	diff <(echo "$before") <(fingerprint)
}

@test "a write-ahead log removed after a crash refuses to start, with no snapshot at all" {
	sh_mount -o snapshot_interval=0
	writes 1 5
	# Once a second while commits come, the marks take the head.
	sh_wait_until 20 grep -qx 'log_head 5' "$DATA/statehouse.marks" || fail "marks: $(cat "$DATA/statehouse.marks")"
	sh_kill9
	rm "$DATA/statehouse.db-wal" "$DATA/statehouse.db-shm"
	before=$(fingerprint)
	refused_start
	# Nothing was ever folded into the database: it holds not even the tables.
	assert_output --partial "cannot start: the log is empty, but acknowledged commits reach commit 5 (newest snapshot: commit 0, last clean stop: commit 0, marked while running: commit 5)"
	diff <(echo "$before") <(fingerprint)
}

@test "--verify changes no file of the data dir after a crash" {
	sh_mount -o snapshot_interval=2
	writes 1 2
	wait_snap 2
	writes 3 3
	sh_kill9
	[ -s "$DATA/statehouse.db-wal" ] || fail "no write-ahead log after the kill"
	before=$(fingerprint)
	verify
	assert_success
	diff <(echo "$before") <(fingerprint)
}

@test "the whole log is checked only when something else may have written it, never after a crash" {
	checks() { grep -c "statehoused: checked the whole log '$DATA/statehouse.db' in [0-9]* ms" "$LOG"; }
	# The first start finds no marks: checked.
	sh_mount
	writes 1 2
	[ "$(checks)" -eq 1 ] || fail "log: $(cat "$LOG")"
	sh_umount
	# As the clean stop left it: not checked.
	sh_mount
	[ "$(checks)" -eq 1 ] || fail "log: $(cat "$LOG")"
	writes 3 3
	# After a crash: not checked.
	sh_kill9
	sh_mount
	[ "$(checks)" -eq 1 ] || fail "log: $(cat "$LOG")"
	sh_umount
	# Changed after the clean stop (here only its time): checked.
	touch "$DATA/statehouse.db"
	sh_mount
	[ "$(checks)" -eq 2 ] || fail "log: $(cat "$LOG")"
	run cat "$A/k3"
	assert_output "value 3"
}
