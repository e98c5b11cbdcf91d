#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Backups: statehousectl backup DEST reads the mount's .backup, a consistent copy of the
# whole store that the daemon makes with SQLite's online backup API while commits go on;
# a new data dir holding it as statehouse.db mounts with the same log, .events, .at and
# versions, and no unclean-stop warning.

load helper
bats_require_minimum_version 1.5.0

setup() {
	sh_default_setup -o allow_other
	MNT2="$SH_TMP/mnt2"
	mkdir -p "$MNT2"
	LOOPS=()
	PID2=
}

teardown() {
	local p
	for p in "${LOOPS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${LOOPS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "$PID2" ]; then
		fusermount3 -u "$MNT2" 2>/dev/null || true
		sh_wait_exit "$PID2" || true
	fi
	sh_default_teardown
}

ctl() {
	"$STATEHOUSECTL" -m "$MNT" "$@"
}

@test "statehousectl backup under load holds every commit acknowledged before it began; the copy mounts with the same log, .at and versions and no unclean-stop warning" {
	sh_start_commit_loops ""
	sh_wait_acks 20 || fail "the commit loops made no progress: $(cat "$SH_TMP/loop.log")"
	{ sed 's/^/w1 /' "$SH_TMP/ack.w1"; sed 's/^/w2 /' "$SH_TMP/ack.w2"; } >"$SH_TMP/acked-before"
	run ctl backup "$SH_TMP/backup.db"
	assert_success
	assert_output --regexp "^backed up '$MNT' to '$SH_TMP/backup.db' \([0-9]+ bytes; every commit up to commit_ts [0-9]+ at least\)$"
	# The loops went on during the backup.
	sh_wait_acks 40 || fail "the commit loops stopped: $(cat "$SH_TMP/loop.log")"
	for p in "${LOOPS[@]}"; do kill "$p"; done
	for p in "${LOOPS[@]}"; do wait "$p" 2>/dev/null || true; done
	LOOPS=()
	# The documented restore: a new data dir with the copy as its statehouse.db.
	mkdir -p "$SH_TMP/restored"
	cp "$SH_TMP/backup.db" "$SH_TMP/restored/statehouse.db"
	"$STATEHOUSED" "$SH_TMP/restored" "$MNT2" -f $(sh_mode_args) >>"$SH_TMP/restored.log" 2>&1 3>&- &
	PID2=$!
	sh_wait_mounted "$MNT2" "$PID2"
	run grep -c "did not stop cleanly" "$SH_TMP/restored.log"
	assert_output 0
	[ "$(jq .unclean_starts "$MNT2/.status")" -eq 0 ]
	head=$(jq .head_commit_ts "$MNT2/.status")
	# Every commit acknowledged before the backup began is in it: loop commit i wrote
	# str(i) to default/AGENT/a, b and c at commit_ts ts.
	[ "$(wc -l <"$SH_TMP/acked-before")" -ge 40 ]
	while read -r w i ts; do
		[ "$ts" -le "$head" ] || fail "acknowledged commit $ts ($w-$i) is past the backup's head $head"
		[ "$(cat "$MNT2/.at/$ts/default/$w/a")" = "$i" ] || fail "commit $ts ($w-$i) differs in the backup"
	done <"$SH_TMP/acked-before"
	# The same log up to the backup's head: every event, op and version.
	diff <(jq -c "select(.commit_ts <= $head)" "$MNT/.events/all.jsonl") \
		<(jq -c . "$MNT2/.events/all.jsonl") || fail "the backup's .events differ"
	diff <(sh_dump_tree "$MNT/.at/$head") <(sh_dump_tree "$MNT2/.at/$head") ||
		fail "the backup's .at/$head differs"
	# The restored store takes new commits after its head.
	mkdir -p "$MNT2/default/after"
	echo new >"$MNT2/default/after/k"
	[ "$(getfattr --only-values -n user.statehouse.commit_ts "$MNT2/default/after/k")" -eq $((head + 1)) ]
}

@test "statehousectl backup refuses a DEST that exists and leaves it as it was" {
	echo precious >"$SH_TMP/taken"
	run ctl backup "$SH_TMP/taken"
	assert_failure 1
	assert_output "statehousectl: cannot back up to '$SH_TMP/taken': File exists"
	[ "$(cat "$SH_TMP/taken")" = precious ]
	run ctl backup
	assert_failure 2
}

@test ".backup may be read only by the daemon's user: another user gets EACCES, even with allow_other" {
	run stat -c '%a %u' "$MNT/.backup"
	assert_output "400 0"
	run sh_errno_as 4002 4002 read .backup
	assert_output EACCES
	# Listing the root makes no copy: its size is 0 until it is read.
	run stat -c %s "$MNT/.backup"
	assert_output 0
	run ls "$SH_TMP/data"
	refute_output --partial backup-
}

@test "the README's backup and restore lines run as written" {
	# The indented lines after "Backups:" in README.md, in a scratch cwd and HOME.
	mapfile -t cmds < <(awk '/^Backups: `statehousectl backup DEST`/ { on = 1; next }
		on && /^    / { print substr($0, 5); seen = 1; next } on && seen && /^[^ ]/ { exit }' \
		"$REPO_ROOT/README.md" | sed 's/ *# .*$//')
	[ "${#cmds[@]}" -eq 3 ] || fail "the README block changed: ${cmds[*]}"
	mkdir -p "$MNT/default/agent-1" "$SH_TMP/wd" "$SH_TMP/home"
	echo '{"step":1}' >"$MNT/default/agent-1/plan"
	readme() {
		cd "$SH_TMP/wd"
		HOME=$SH_TMP/home STATEHOUSE_MOUNT=$MNT
		export HOME STATEHOUSE_MOUNT
		statehousectl() { "$STATEHOUSECTL" "$@"; }
		statehoused() { "$STATEHOUSED" "$@" $(sh_mode_args) 3>&- </dev/null >>"$SH_TMP/restored.log" 2>&1; }
		eval "$1"
	}
	for c in "${cmds[@]}"; do
		run -0 readme "$c"
	done
	PID2=$(sh_daemon_pid "$SH_TMP/home/restored") || fail "no daemon serves ~/restored"
	MNT2=$SH_TMP/home/restored
	run cat "$MNT2/default/agent-1/plan"
	assert_output '{"step":1}'
	diff "$MNT/.events/all.jsonl" "$MNT2/.events/all.jsonl"
}

@test "the copy of a backup a killed daemon left in DATADIR is removed at the next start" {
	head -c 1000 /dev/zero >"$DATA/backup-123-0.tmp"
	echo keep >"$DATA/backup-notes.txt"
	sh_restart -o allow_other
	[ ! -e "$DATA/backup-123-0.tmp" ]
	[ -f "$DATA/backup-notes.txt" ]
	grep -qF "removed '$(realpath "$DATA")/backup-123-0.tmp', the copy of a backup that did not finish" "$LOG"
}
