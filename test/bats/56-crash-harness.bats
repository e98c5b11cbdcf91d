#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The crash harness (test/crash/harness) in CI: writer processes commit multi-key
# transactions that keep invariants while the daemon is SIGKILLed at random moments (also
# mid-commit, during a snapshot, and while the next daemon recovers) and restarted on the
# same MOUNTPOINT; after every restart it checks the log, the live tree, .history, .at,
# .metrics and --verify. test/soak/run runs the same harness for hundreds of cycles. With
# --kill worker it kills the supervised daemon's worker instead, and restarts nothing.

load helper

setup() {
	load_libs
	sh_setup_dirs
}

teardown() {
	local rc=0
	# The harness cleans up after itself; this only catches what a crash of it left.
	sh_umount_below "$SH_TMP" || rc=1
	sh_check_sanitizer_dir || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# harness ARGS...: the harness against $STATEHOUSED in this run's mode, its work dir in $SH_TMP.
harness() {
	local mode=()
	[ "${STATEHOUSE_TEST_SINGLE:-0}" = 1 ] && mode=(--daemon-arg=-s)
	"$SH_PYTHON" "$REPO_ROOT/test/crash/harness" --daemon "$STATEHOUSED" \
		--workdir "$SH_TMP/work" "${mode[@]}" "$@" 3>&-
}

@test "twenty SIGKILLs under multi-key writers lose no acknowledged commit and never show part of a transaction" {
	run harness --cycles 20 --writers 3 --seconds 0.8 --snapshot-interval 7
	echo "$output"
	assert_success
	assert_line --partial "crash harness: 20 kill cycles"
	assert_line --partial "all checks passed"
	# Every cycle checked the whole log again, not only the new events.
	[ "$(grep -c '^cycle [0-9]*/20: .*full check ok$' <<<"$output")" -eq 20 ]
	# It cleaned up: nothing mounted, no daemon left.
	[ "$(sh_mount_count "$SH_TMP/work/mnt")" -eq 0 ]
	! sh_daemon_pid "$SH_TMP/work/mnt"
}

@test "SIGKILLs of the supervised daemon's worker keep the mount and lose nothing: no transaction, no acknowledged commit" {
	run harness --kill worker --cycles 20 --writers 3 --seconds 0.6 --recovery-kill-every 4
	echo "$output"
	assert_success
	assert_line --partial "crash harness: 20 kill cycles"
	assert_line --partial "mountinfo polls, no gap, 0 transactions lost with a worker"
	assert_line --partial "all checks passed"
	[ "$(grep -c '^cycle [0-9]*/20: kill worker .*check ok$' <<<"$output")" -eq 20 ]
	[ "$(sh_mount_count "$SH_TMP/work/mnt")" -eq 0 ]
	! sh_daemon_pid "$SH_TMP/work/mnt"
}
