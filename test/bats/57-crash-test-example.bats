#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# examples/crash-test: the guide's procedure a user runs against their own mount (write,
# kill -9, restart, verify), as examples/crash-test/README.md shows it.

load helper

setup() {
	sh_default_setup
	EX="$REPO_ROOT/examples/crash-test"
	WRITER=
}

teardown() {
	if [ -n "$WRITER" ]; then
		kill "$WRITER" 2>/dev/null || true
		wait "$WRITER" 2>/dev/null || true
	fi
	sh_default_teardown
}

acked() { grep -vc '^#' "$SH_TMP/acked"; }
acked_at_least() { [ "$(acked)" -ge "$1" ]; }

@test "every transaction write-test saw acknowledged before a kill -9 is there and whole after the restart" {
	"$EX/write-test" -n 100000 "$MNT" "$SH_TMP/acked" 2>"$SH_TMP/write.err" 3>&- &
	WRITER=$!
	sh_wait_until 120 acked_at_least 10
	sh_kill9
	local st=0
	wait "$WRITER" || st=$?
	WRITER=
	[ "$st" -eq 1 ] || fail "write-test exited $st: $(cat "$SH_TMP/write.err")"
	grep -q '^write-test: stopped ' "$SH_TMP/write.err"

	sh_mount

	run "$EX/verify-test" "$MNT" "$SH_TMP/acked"
	assert_success
	assert_output --regexp "^verify-test: ok: $(acked) acknowledged transactions are there and whole; [01] not acknowledged"
}

@test "write-test goes on after a restart with the same file and verify-test checks both runs" {
	run "$EX/write-test" -n 5 "$MNT" "$SH_TMP/acked"
	assert_success
	sh_restart
	run "$EX/write-test" -n 8 "$MNT" "$SH_TMP/acked"
	assert_success
	[ "$(acked)" -eq 8 ]
	sh_restart
	run "$EX/verify-test" "$MNT" "$SH_TMP/acked"
	assert_success
	assert_output --partial "ok: 8 acknowledged transactions are there and whole; 0 not acknowledged"
}

@test "verify-test fails when an acknowledged transaction is missing or partly there" {
	run "$EX/write-test" -n 4 -a mine "$MNT" "$SH_TMP/acked"
	assert_success
	rm "$MNT/crash-test/mine/3.b"
	echo "9 99" >>"$SH_TMP/acked"
	run "$EX/verify-test" "$MNT" "$SH_TMP/acked"
	assert_failure
	assert_line --partial "transaction 3 is partly there: 2 of its 3 keys"
	assert_line --partial "acknowledged transaction 9 (commit_ts 99): $MNT/crash-test/mine/9.a is missing"
	assert_line --partial "verify-test: FAILED"
}
