#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# README command 1: scripts/quickstart mounts a state tree, the README's tour works on it
# line by line, and it unmounts the way the script says.

load helper

setup() {
	load_libs
	sh_setup_dirs
	rmdir "$MNT" # the script creates the mountpoint
	export STATEHOUSE_DATA="$DATA" STATEHOUSE_MOUNT="$MNT"
	OUT="$SH_TMP/quickstart.out"
}

teardown() {
	local rc=0
	sh_umount_below "$SH_TMP" || rc=1
	sh_default_teardown || rc=1
	return $rc
}

# quickstart: run the script (output to a file: the daemon it starts outlives it).
quickstart() {
	"$REPO_ROOT/scripts/quickstart" >"$OUT" 2>&1 3>&- </dev/null ||
		fail "scripts/quickstart exited $?: $(cat "$OUT")"
}

@test "quickstart mounts a state tree on which the README tour works, and says how to unmount it" {
	quickstart
	sh_is_mounted "$MNT" || fail "nothing is mounted at $MNT: $(cat "$OUT")"
	[ -d "$DATA" ]
	# The store holds every value in the clear: its data dir is the user's alone.
	run stat -c %a "$DATA"
	assert_output 700
	grep -qF "fusermount3 -u $MNT" "$OUT" || fail "no unmount command in: $(cat "$OUT")"
	grep -qF 'mv "$T/.commit.pending" "$T/.commit"' "$OUT"

	# The tour of README.md, as written there.
	S=$MNT
	echo hello >$S/default/agent-1/greeting
	run cat $S/default/agent-1/greeting
	assert_output hello
	run getfattr -d $S/default/agent-1/greeting
	assert_line 'user.statehouse.version="1"'
	assert_line --regexp '^user\.statehouse\.commit_ts="[0-9]+"$'
	echo tmp >$S/default/agent-1/scratch
	T=$S/.tx/job-42
	mkdir "$T"
	echo '{"step":3}' >"$T/default/agent-1/progress"
	rm "$T/default/agent-1/scratch"
	run cat "$S/default/agent-1/scratch"
	assert_output tmp
	mv "$T/.commit.pending" "$T/.commit"
	run jq -c '{txn, ops, ts: (.commit_ts | type)}' "$T/.commit"
	assert_output '{"txn":"job-42","ops":2,"ts":"number"}'
	rmdir "$T"
	run cat $S/default/agent-1/progress
	assert_output '{"step":3}'
	run sh_errno stat $S/default/agent-1/scratch
	assert_output ENOENT
	run cat $S/.health
	assert_output ok

	# The tour of the past, as written in README.md (commits: 1 greeting, 2 scratch,
	# 3 job-42).
	run ls $S/.at/2/default/agent-1
	assert_output "$(printf 'greeting\nscratch')"
	run diff -r $S/.at/2/default $S/.at/3/default
	assert_failure 1
	assert_line "Only in $S/.at/3/default/agent-1: progress"
	assert_line "Only in $S/.at/2/default/agent-1: scratch"
	run jq -sc 'map(.op)' $S/.history/default/agent-1/scratch/index.jsonl
	assert_output '["put","delete"]'
	run cat $S/.history/default/agent-1/scratch/1
	assert_output tmp
	run jq -c '.ops[]' $S/.events/default/agent-1.jsonl
	assert_line --index 0 '{"ns":"default","agent":"agent-1","key":"greeting","op":"put","version":1,"value":"hello\n"}'
	assert_line --index 2 '{"ns":"default","agent":"agent-1","key":"scratch","op":"delete","version":2}'
	assert_line --index 3 '{"ns":"default","agent":"agent-1","key":"progress","op":"put","version":1,"value":{"step":3}}'
	run cat $S/.events/since/3/all.jsonl
	[ "${#lines[@]}" -eq 1 ]
	[ "$(jq -r .txn <<<"${lines[0]}")" = job-42 ]
	run timeout 2 cat $S/.follow/default/agent-1.jsonl
	assert_failure 124 # timeout ended the wait for new commits
	[ "${#lines[@]}" -eq 3 ]

	# Unmount as the script says; the daemon then exits.
	pid=$(sh_daemon_pid "$MNT") || fail "no statehoused serves $MNT"
	fusermount3 -u "$MNT"
	sh_wait_exit "$pid"
	refute sh_is_mounted "$MNT"
}

@test "quickstart builds statehousectl and the man pages and says how to put statehousectl on PATH" {
	rm -f "$REPO_ROOT/build/mountctl/statehousectl" "$REPO_ROOT"/build/doc/statehouse{.5,d.8,ctl.1}
	quickstart
	# The PATH line as printed, run in a shell of its own: statehousectl then answers.
	line=$(grep -E '^  export PATH=' "$OUT" | sed 's/^  //; s/[[:space:]]*#.*$//') ||
		fail "no export PATH line in: $(cat "$OUT")"
	[ "$line" = "export PATH=\"$REPO_ROOT/build/mountctl:\$PATH\"" ] || fail "PATH line: $line"
	run env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c "$line; command -v statehousectl; statehousectl status $MNT"
	assert_success
	assert_line --index 0 "$REPO_ROOT/build/mountctl/statehousectl"
	assert_output --partial "$MNT"
	grep -qF "statehousectl status $MNT" "$OUT"
	# The man pages it names render (troff's layout warnings are 85-install's business).
	grep -qF "man -l $REPO_ROOT/build/doc/statehousectl.1" "$OUT"
	for page in statehousectl.1 statehoused.8 statehouse.5; do
		run bash -c 'MANWIDTH=80 man -l "$1" 2>/dev/null' - "$REPO_ROOT/build/doc/$page"
		assert_success
		assert_line --index 0 --regexp "^${page%.*}\\(${page##*.}\\) "
	done
}

@test "quickstart run again keeps a live mount, and mounts the same data again after an unmount" {
	quickstart
	mkdir -p "$MNT/default/agent-1"
	echo kept >"$MNT/default/agent-1/k"

	quickstart
	grep -q "already mounted" "$OUT" || fail "second run said: $(cat "$OUT")"
	[ "$(sh_mount_count "$MNT")" -eq 1 ]

	pid=$(sh_daemon_pid "$MNT")
	fusermount3 -u "$MNT"
	sh_wait_exit "$pid"
	quickstart
	run cat "$MNT/default/agent-1/k"
	assert_output kept
}
