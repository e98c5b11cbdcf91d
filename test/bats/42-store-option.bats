#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# -o store=URI: which store holds the log.  This build serves only SQLite in DATADIR
# ("sqlite:", the default); any other scheme is refused before anything is mounted or
# made in DATADIR.

load helper

setup() {
	load_libs
	sh_setup_dirs
}

teardown() {
	sh_default_teardown
}

@test "-o store=sqlite: mounts and serves, with the log in DATADIR/statehouse.db" {
	sh_mount -o store=sqlite:
	mkdir -p "$MNT/default/agent-1"
	echo hello >"$MNT/default/agent-1/greeting"
	run cat "$MNT/default/agent-1/greeting"
	assert_output hello
	[ -f "$DATA/statehouse.db" ] || fail "no SQLite log in $DATA"
	sh_umount
	# The same log again without the option: sqlite: is the default.
	sh_mount
	run cat "$MNT/default/agent-1/greeting"
	assert_output hello
}

@test "-o store=etcd://127.0.0.1:2379/v exits non-zero naming the URI, mounts nothing and creates nothing in DATADIR" {
	mkdir -p "$DATA"
	run timeout 20 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) -o store=etcd://127.0.0.1:2379/v
	[ "$status" -ne 124 ] || fail "statehoused was still running after 20 s (expected it to refuse)"
	assert_failure
	assert_output --partial "unsupported store 'etcd://127.0.0.1:2379/v'"
	assert_output --partial "sqlite:"
	refute sh_is_mounted "$MNT"
	[ -z "$(ls -A "$DATA")" ] || fail "DATADIR is not empty: $(ls -A "$DATA")"
}

@test "a refused store URI leaves a missing DATADIR uncreated" {
	run timeout 20 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) -o store=etcd://h:2379/v
	assert_failure
	refute sh_is_mounted "$MNT"
	[ ! -e "$DATA" ] || fail "DATADIR was created"
}

@test "--help lists -o store=URI and its default" {
	run "$STATEHOUSED" --help
	assert_success
	assert_output --partial "store=URI"
	assert_output --partial "sqlite:"
}
