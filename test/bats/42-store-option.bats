#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# -o store=URI: which store holds the log: SQLite in DATADIR ("sqlite:", the default) or
# a volume in etcd (47-etcd-shared.bats); any other scheme, or a malformed URI, is
# refused before anything is mounted or made in DATADIR.

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

@test "-o store=redis://127.0.0.1:6379/v exits non-zero naming the URI and the stores served, mounts nothing and creates nothing in DATADIR" {
	mkdir -p "$DATA"
	run timeout 20 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) -o store=redis://127.0.0.1:6379/v
	[ "$status" -ne 124 ] || fail "statehoused was still running after 20 s (expected it to refuse)"
	assert_failure 2
	assert_output --partial "unsupported store 'redis://127.0.0.1:6379/v'"
	assert_output --partial "sqlite: (the default), etcd:"
	refute sh_is_mounted "$MNT"
	[ -z "$(ls -A "$DATA")" ] || fail "DATADIR is not empty: $(ls -A "$DATA")"
}

@test "a refused store URI leaves a missing DATADIR uncreated" {
	run timeout 20 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) -o store=redis://h:2379/v
	assert_failure
	refute sh_is_mounted "$MNT"
	[ ! -e "$DATA" ] || fail "DATADIR was created"
}

@test "a malformed etcd URI is refused before anything is made, naming its form" {
	for uri in etcd://h:2379 etcd://h:2379/ etcd://h/v etcd://h:x/v "etcd://h:2379/a b" etcd:///v; do
		run timeout 20 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) -o "store=$uri"
		assert_failure 2
		assert_output --partial "etcd://HOST:PORT"
		refute sh_is_mounted "$MNT"
		[ ! -e "$DATA" ] || fail "DATADIR was created for $uri"
	done
}

@test "an etcd that cannot be reached refuses the start and leaves a missing DATADIR uncreated" {
	run timeout 30 "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) -o store=etcd://127.0.0.1:1/v
	assert_failure 1
	assert_output --partial "cannot reach etcd"
	refute sh_is_mounted "$MNT"
	[ ! -e "$DATA" ] || fail "DATADIR was created"
}

@test "--help lists -o store=URI and its default" {
	run "$STATEHOUSED" --help
	assert_success
	assert_output --partial "store=URI"
	assert_output --partial "sqlite:"
}
