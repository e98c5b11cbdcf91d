#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Retention: -o keep_versions=N and -o keep_days=D prune the log in the background (a
# round a second at most), keep the newest version of every key, make .at below the
# horizon ENOENT and start the event streams at it, show the horizon in .status and
# .metrics, give the space back (the file shrinks), and keep recovery and --verify whole,
# also when the daemon is killed in the middle of a prune.  statehoused --vacuum makes a
# store of before retention able to shrink.  Waits are deadlines on what the daemon
# does in the background, never measures of its speed.

load helper

setup() {
	load_libs
	sh_setup_dirs
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
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# overwrite PATH N SIZE: N commits of PATH, each a value of SIZE bytes ending in its number.
overwrite() {
	"$SH_PYTHON" - "$1" "$2" "$3" <<'EOF'
import os, sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.dirname(path), exist_ok=True)
for i in range(1, n + 1):
    tail = b" %d\n" % i
    with open(path, "wb") as f:
        f.write(b"x" * (size - len(tail)) + tail)
EOF
}

# versions PATH: the versions .history keeps of the key at PATH below the mount, on one line.
versions() {
	jq -r .version "$MNT/.history/$1/index.jsonl" | tr '\n' ' ' | sed 's/ $//'
}

# has_versions PATH LIST: .history of PATH keeps exactly LIST (for sh_wait_until).
has_versions() { [ "$(versions "$1")" = "$2" ]; }

# metric NAME: the value of statehouse_NAME in .metrics.
metric() {
	awk -v n="statehouse_$1" '$1 == n { print $2; found = 1 } END { exit !found }' "$MNT/.metrics"
}

# metric_above NAME N, horizon_above N, pauses_at_least N: for sh_wait_until.
metric_above() { [ "$(metric "$1")" -gt "$2" ]; }
horizon_above() { [ "$(jq -r .horizon_ts "$MNT/.status")" -gt "$1" ]; }
pauses_at_least() { [ "$(grep -c 'test hook: pausing' "$LOG")" -ge "$1" ]; }

failed_steps_at_least() { [ "$(grep -c 'prune step of .*: No space left on device' "$LOG")" -ge "$1" ]; }

db_bytes() { stat -c %s "$DATA/statehouse.db"; }
smaller_than() { [ "$(db_bytes)" -lt "$1" ]; }
status_field() { jq -r ".$1" "$MNT/.status"; }

@test "keep_versions=1 prunes 1,000 overwrites of a 1 KB key and the store shrinks back" {
	sh_mount
	overwrite "$A/k" 1000 1024
	echo small >"$A/other"
	sh_umount
	full=$(db_bytes)
	[ "$full" -gt 4000000 ] || fail "1,000 versions of 1 KB take $full bytes"

	sh_mount -o keep_versions=1
	sh_wait_until 60 has_versions default/agent-1/k 1000
	[ "$(versions default/agent-1/other)" = 1 ]
	[ "$(tail -c 6 "$A/k")" = " 1000" ] || fail "the value is $(tail -c 6 "$A/k")"
	# The space goes back to the file system once the pruner's round has vacuumed.
	sh_wait_until 60 smaller_than $((full / 4)) || fail "the store is still $(db_bytes) bytes (was $full)"
	[ "$(status_field horizon_ts)" = 1000 ]
	[ "$(status_field keep_versions)" = 1 ]
	[ "$(metric pruned_ops_total)" = 999 ]
	[ "$(metric horizon_commit_ts)" = 1000 ]
	[ "$(metric database_free_bytes)" = 0 ] || fail "free bytes: $(metric database_free_bytes)"
	sh_umount
	[ "$(db_bytes)" -lt $((full / 4)) ] || fail "after the stop: $(db_bytes) bytes, was $full"
	echo "# store: $full bytes with 1,000 versions, $(db_bytes) after keep_versions=1" >&3
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
	# Versions go on after the pruned ones.
	sh_mount
	echo again >"$A/k"
	[ "$(sh_xattr version "$A/k")" = 1001 ]
}

@test ".at before the horizon answers ENOENT and from the horizon on shows the state as it was" {
	sh_mount
	mkdir -p "$A"
	echo cold >"$A/cold"
	for i in 1 2 3 4; do echo "v$i" >"$A/hot"; done
	mkdir "$A/dir"
	echo x >"$A/dir/x"
	before=$(sh_dump_tree "$MNT/.at/7")
	sh_remount -o keep_versions=2
	sh_wait_until 30 has_versions default/agent-1/hot "3 4"
	h=$(status_field horizon_ts)
	[ "$h" = 4 ] || fail "horizon $h"
	run sh_errno stat "$MNT/.at/3"
	assert_output ENOENT
	run sh_errno read "$MNT/.at/3/default/agent-1/cold"
	assert_output ENOENT
	[ "$(cat "$MNT/.at/4/default/agent-1/hot")" = v3 ]
	[ "$(cat "$MNT/.at/4/default/agent-1/cold")" = cold ]
	[ "$(ls "$MNT/.at/4/default/agent-1")" = "$(printf 'cold\nhot')" ]
	[ "$(sh_dump_tree "$MNT/.at/7")" = "$before" ]
	# .history lists what is kept; a pruned version is gone by number too.
	run sh_errno read "$MNT/.history/default/agent-1/hot/2"
	assert_output ENOENT
	[ "$(cat "$MNT/.history/default/agent-1/hot/4")" = v4 ]
	[ "$(versions default/agent-1/cold)" = 1 ]
}

@test "the event streams start at the horizon, since/ below it included" {
	sh_mount -o keep_versions=2
	mkdir -p "$A"
	for i in 1 2; do echo "v$i" >"$A/k"; done
	# A reader learns the stream's size, which the prune then makes stale.
	[ "$(wc -l <"$MNT/.events/all.jsonl")" = 2 ]
	for i in 3 4 5; do echo "v$i" >"$A/k"; done
	sh_wait_until 30 has_versions default/agent-1/k "4 5"
	[ "$(status_field horizon_ts)" = 4 ]
	# The size learned before the prune is no size of the stream now: unknown (0, as
	# before any reader reached the end) until a reader reads it again.
	[ "$(stat -c %s "$MNT/.events/all.jsonl")" = 0 ] ||
		fail "stat says $(stat -c %s "$MNT/.events/all.jsonl") bytes before a reader read the pruned stream"
	stream=$(cat "$MNT/.events/all.jsonl")
	run jq -r .commit_ts <<<"$stream"
	assert_output "$(printf '4\n5')"
	run jq -r .commit_ts "$MNT/.events/since/2/all.jsonl"
	assert_output "$(printf '4\n5')"
	run jq -r .commit_ts "$MNT/.events/default/agent-1.jsonl"
	assert_output "$(printf '4\n5')"
	# Then stat tells the kept stream's size (tail -f follows it), not the old one's.
	[ "$(stat -c %s "$MNT/.events/all.jsonl")" = $((${#stream} + 1)) ] ||
		fail "stat says $(stat -c %s "$MNT/.events/all.jsonl") bytes, the stream has $((${#stream} + 1))"
}

@test "retention prunes while writers commit and readers read, and --verify passes after" {
	sh_mount -o keep_versions=2
	sh_start_commit_loops ""
	sh_wait_acks 1 || fail "the commit loops did not start: $(cat "$SH_TMP/loop.log")"
	errs="$SH_TMP/reader.err"
	(
		while :; do
			for w in w1 w2; do
				cat "$MNT/default/$w/a" "$MNT/default/$w/b" >/dev/null || echo "read $w" >>"$errs"
				jq -e . "$MNT/.history/default/$w/a/index.jsonl" >/dev/null || echo "history $w" >>"$errs"
			done
			jq -e . "$MNT/.events/all.jsonl" >/dev/null || echo events >>"$errs"
		done
	) 2>>"$errs" 3>&- &
	LOOPS+=($!)
	sh_wait_acks 300 || fail "the loops did not reach 300 commits: $(cat "$SH_TMP/loop.log")"
	sh_wait_until 60 metric_above pruned_ops_total 0
	sh_wait_until 60 horizon_above 100
	for pid in "${LOOPS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
	LOOPS=()
	[ ! -s "$errs" ] || fail "readers failed: $(cat "$errs")"
	for w in w1 w2; do
		last=$(tail -n 1 "$SH_TMP/ack.$w" | cut -d' ' -f1)
		v=$(cat "$MNT/default/$w/a")
		[ "$v" = "$last" ] || [ "$v" = $((last + 1)) ] || fail "$w/a is $v, last acknowledged $last"
	done
	sh_wait_until 30 has_versions default/w1/a "$(($(sh_xattr version "$MNT/default/w1/a") - 1)) $(sh_xattr version "$MNT/default/w1/a")"
	sh_umount
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
}

@test "a daemon killed in the middle of a prune loses nothing, and --verify passes after" {
	sh_mount
	overwrite "$A/k" 800 100
	overwrite "$A/j" 300 100
	before=$(sh_dump_tree "$MNT")
	sh_umount
	STATEHOUSE_PRUNE_PAUSE_MS=2000 sh_mount -o keep_versions=1
	if grep -q 'ignoring STATEHOUSE_PRUNE_PAUSE_MS' "$LOG"; then
		sh_skip "this build has no fault injection (meson -Dfault_injection=true)"
	fi
	# Two steps committed, the third one paused before its commit: kill it there.
	sh_wait_until 60 pauses_at_least 3
	sh_kill9
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
	sh_mount -o keep_versions=1
	[ "$(sh_dump_tree "$MNT")" = "$before" ]
	sh_wait_until 60 has_versions default/agent-1/k 800
	sh_wait_until 60 has_versions default/agent-1/j 300
	[ "$(sh_dump_tree "$MNT")" = "$before" ]
	sh_umount
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
}

@test "SIGKILLs at random points of pruning and committing lose no acknowledged commit" {
	local i
	sh_mount
	overwrite "$A/k" 400 200
	sh_umount
	for i in 1 2 3 4 5; do
		sh_mount -o keep_versions=1
		sh_start_commit_loops "-$i"
		sleep "0.$((RANDOM % 10))"
		sh_kill9
		for pid in "${LOOPS[@]}"; do wait "$pid" 2>/dev/null || true; done
		LOOPS=()
		run "$STATEHOUSED" --verify "$DATA"
		assert_success
	done
	sh_mount -o keep_versions=1
	for i in 1 2 3 4 5; do
		for w in w1 w2; do
			last=$(tail -n 1 "$SH_TMP/ack.$w-$i" 2>/dev/null | cut -d' ' -f1)
			[ -z "$last" ] && continue
			v=$(cat "$MNT/default/$w-$i/a")
			[ "$v" -ge "$last" ] || fail "$w-$i/a is $v, acknowledged $last"
		done
	done
	sh_wait_until 60 has_versions default/agent-1/k 400
	sh_umount
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
}

@test "keep_days keeps what the state of the last D days needs and prunes what is older" {
	# 0.0001 days is 8.64 s.
	sh_mount -o keep_days=0.0001
	mkdir -p "$A"
	for i in 1 2 3; do echo "v$i" >"$A/k"; done
	[ "$(status_field keep_days)" = 0.0001 ]
	# Once the three are older than the period, the state as of its start needs only v3.
	sh_wait_until 60 has_versions default/agent-1/k 3
	echo v4 >"$A/k"
	[ "$(versions default/agent-1/k)" = "3 4" ]
	[ "$(status_field horizon_ts)" = 3 ]
	sh_wait_until 60 has_versions default/agent-1/k 4
	[ "$(cat "$A/k")" = v4 ]
}

@test "a prune step that fails is said once in the log and tried again" {
	sh_mount
	overwrite "$A/k" 20 100
	sh_umount
	STATEHOUSE_FAULT=after=0,code=full sh_mount -o keep_versions=1,log_level=debug
	if grep -q 'ignoring STATEHOUSE_FAULT' "$LOG"; then
		sh_skip "this build has no fault injection (meson -Dfault_injection=true)"
	fi
	# Rounds after a failure come every 5 s: wait for the second attempt.
	sh_wait_until 30 failed_steps_at_least 2
	[ "$(grep -c 'cannot prune the log: No space left on device; trying again every 5 s' "$LOG")" = 1 ]
	# Nothing of a failed step stays.
	sh_umount
	sh_mount
	[ "$(versions default/agent-1/k | wc -w)" = 20 ]
}

@test "statehoused --vacuum makes a store of before retention able to shrink" {
	sh_mount
	overwrite "$A/k" 300 2000
	sh_umount
	# A store as earlier builds made them: no incremental vacuum.
	sqlite3 "$DATA/statehouse.db" 'PRAGMA auto_vacuum=NONE; VACUUM;'
	[ "$(sqlite3 "$DATA/statehouse.db" 'PRAGMA auto_vacuum')" = 0 ]
	full=$(db_bytes)
	sh_mount -o keep_versions=1
	sh_wait_until 60 has_versions default/agent-1/k 300
	sh_wait_until 60 grep -q "was made before stores could shrink" "$LOG"
	grep -qF "run 'statehoused --vacuum $DATA' once" "$LOG"
	# Reused, not given back: the file keeps its size.
	[ "$(db_bytes)" -ge "$full" ]
	# Never beside a running daemon.
	run "$STATEHOUSED" --vacuum "$DATA"
	assert_failure 1
	assert_output --partial "already in use"
	sh_umount

	run "$STATEHOUSED" --vacuum "$DATA"
	assert_success
	assert_output --partial "can shrink after a prune"
	[ "$(db_bytes)" -lt $((full / 4)) ] || fail "after --vacuum: $(db_bytes) bytes, was $full"
	[ "$(sqlite3 "$DATA/statehouse.db" 'PRAGMA auto_vacuum')" = 2 ]
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
	sh_mount
	[ "$(tail -c 5 "$A/k")" = " 300" ]
}

@test "statehoused --vacuum refuses a directory without a store and a bad command line" {
	mkdir -p "$SH_TMP/empty"
	run "$STATEHOUSED" --vacuum "$SH_TMP/empty"
	assert_failure 1
	assert_output --partial "there is no store in it"
	run "$STATEHOUSED" --vacuum "$SH_TMP/missing"
	assert_failure 1
	assert_output --partial "not a directory"
	run "$STATEHOUSED" --vacuum
	assert_failure 2
	assert_output --partial "usage: statehoused --vacuum DATADIR"
}

@test "bad retention options are refused before the data dir is made" {
	for opt in keep_versions=-1 keep_versions=2000000000 keep_days=-1 keep_days=abc \
		keep_days=1x keep_days=40000 keep_days=nan; do
		run "$STATEHOUSED" "$DATA" "$MNT" -f -o "$opt"
		assert_failure 2
		assert_output --partial "keep_"
		[ ! -e "$DATA" ] || fail "$opt made the data dir"
	done
}

@test "a mount without retention keeps every version, and the options combine" {
	sh_mount
	mkdir -p "$A"
	for i in 1 2 3; do echo "v$i" >"$A/k"; done
	[ "$(status_field horizon_ts)" = 0 ]
	[ "$(status_field keep_versions)" = 0 ]
	sh_remount -o keep_versions=10,keep_days=30
	[ "$(status_field keep_versions)" = 10 ]
	[ "$(status_field keep_days)" = 30 ]
	[ "$(versions default/agent-1/k)" = "1 2 3" ]
}

@test "the README's retention lines run as written" {
	mapfile -t cmds < <(awk '/^Retention: by default/ { on = 1; next }
		on && /^    / { print substr($0, 5); seen = 1; next } on && seen && /^[^ ]/ { exit }' \
		"$REPO_ROOT/README.md" | sed 's/ *# .*$//')
	[ "${#cmds[@]}" -eq 2 ] || fail "the README block changed: ${cmds[*]}"
	readme() {
		local c=${1//DATADIR/$DATA}
		c=${c//MOUNTPOINT/$MNT}
		eval "\"$STATEHOUSED\"${c#statehoused}"
	}
	readme "${cmds[0]}" 2>>"$LOG"
	SH_PID=$(sh_daemon_pid "$MNT")
	[ "$(status_field keep_versions)" = 10 ]
	[ "$(status_field keep_days)" = 30 ]
	sh_umount
	run readme "${cmds[1]}"
	assert_success
	assert_output --partial "can shrink after a prune"
}
