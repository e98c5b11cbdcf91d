#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A volume in a three-member etcd cluster (test/etcd/cluster, on the test's tmp dir):
# the leader killed under a commit loop loses no acknowledged commit on any mount; a
# mount whose member is cut off in a minority keeps serving reads, marked stale, fails
# its commits with EIO after etcd_commit_timeout_ms (known not committed), and catches
# up once the majority is back.

setup() {
	load helper
	load_libs
	sh_setup_dirs
	ETCD_DIR="$SH_TMP/etcd"
	"$BATS_TEST_DIRNAME/../etcd/cluster" start "$ETCD_DIR" 3
	EPS=$(cat "$ETCD_DIR/endpoints")
	VOL="v$(basename "$SH_TMP" | tr -cd 'A-Za-z0-9')"
	DATA2="$SH_TMP/data2"
	MNT2="$SH_TMP/mnt2"
	LOG2="$SH_TMP/daemon2.log"
	mkdir -p "$MNT2"
	PID2=
	LOOP=
}

teardown() {
	local rc=0
	[ -n "$LOOP" ] && { touch "$SH_TMP/stop"; wait "$LOOP" 2>/dev/null || true; }
	for f in "$ETCD_DIR"/*/pid; do kill -CONT "$(cat "$f")" 2>/dev/null || true; done
	sh_second_teardown || rc=1
	sh_default_teardown || rc=1
	"$BATS_TEST_DIRNAME/../etcd/cluster" stop "$ETCD_DIR"
	return $rc
}

member_ep() {
	echo "127.0.0.1:$(cat "$ETCD_DIR/$1/client")"
}

# mount_b URI [daemon args...]
mount_b() {
	local uri=$1
	shift
	"$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=$uri" "$@" >>"$LOG2" 2>&1 3>&- &
	PID2=$!
	LOG="$LOG2" sh_wait_mounted "$MNT2" "$PID2"
}

# commit_loop: one new key per commit until $SH_TMP/stop exists; each number goes to
# acked or failed as its close() answered.
commit_loop() {
	local i=0
	while [ ! -e "$SH_TMP/stop" ]; do
		i=$((i + 1))
		if echo "$i" >"$MNT/default/ag/k$i" 2>/dev/null; then
			echo "$i" >>"$SH_TMP/acked"
		else
			echo "$i" >>"$SH_TMP/failed"
		fi
	done
}

# acked_over N: more than N commits were acknowledged.
acked_over() {
	[ "$(wc -l <"$SH_TMP/acked")" -gt "$1" ]
}

@test "the leader killed during a commit loop: every acknowledged commit is on both mounts" {
	"$STATEHOUSECTL" init "etcd://$EPS/$VOL"
	sh_mount -o "store=etcd://$EPS/$VOL"
	mount_b "etcd://$EPS/$VOL"
	commit_loop &
	LOOP=$!
	sh_wait_until 20 test -s "$SH_TMP/acked"
	leader=$("$BATS_TEST_DIRNAME/../etcd/cluster" leader "$ETCD_DIR")
	before=$(wc -l <"$SH_TMP/acked")
	kill -9 "$(cat "$ETCD_DIR/$leader/pid")"
	# commits go on with the two members left
	sh_wait_until 30 acked_over $((before + 20))
	touch "$SH_TMP/stop"
	wait "$LOOP"
	LOOP=
	[ ! -s "$SH_TMP/failed" ] || { echo "failed commits: $(cat "$SH_TMP/failed")" >&2; false; }
	n=$(wc -l <"$SH_TMP/acked")
	sh_wait_until 20 grep -q "\"head_commit_ts\":$n," "$MNT2/.status"
	for i in $(cat "$SH_TMP/acked"); do
		[ "$(cat "$MNT/default/ag/k$i")" = "$i" ]
		[ "$(cat "$MNT2/default/ag/k$i")" = "$i" ]
	done
	run jq -s --argjson n "$n" '[.[].commit_ts] == [range(1; $n + 1)]' "$MNT2/.events/all.jsonl"
	assert_output true
	cmp "$MNT/.events/all.jsonl" "$MNT2/.events/all.jsonl"
}

@test "a mount in a minority: reads served and marked stale, commits fail with EIO, then it catches up" {
	"$STATEHOUSECTL" init "etcd://$EPS/$VOL"
	# A talks to member 1 only; B to the two others.
	sh_mount -o "store=etcd://$(member_ep 1)/$VOL" -o etcd_commit_timeout_ms=1500
	mount_b "etcd://$(member_ep 2),$(member_ep 3)/$VOL" -o stale_reads=eio
	echo before >"$MNT/default/ag/k"
	sh_wait_until 10 grep -qx before "$MNT2/default/ag/k"
	sh_jq '.store.stale == false' "$MNT/.status"
	cat "$MNT/.health"
	kill -STOP "$(cat "$ETCD_DIR/2/pid")" "$(cat "$ETCD_DIR/3/pid")"
	sh_wait_until 20 sh_jq '.store.stale == true' "$MNT/.status"
	# reads go on from the replica; health says the store cannot be reached
	[ "$(cat "$MNT/default/ag/k")" = before ]
	run sh_errno read "$MNT/.health"
	assert_output EIO
	# a commit waits etcd_commit_timeout_ms, then fails: known not committed
	run sh_errno write "$MNT/default/ag/k" after
	assert_output EIO
	[ "$(cat "$MNT/default/ag/k")" = before ]
	run sh_errno write "$MNT/default/ag/new" x
	assert_output EIO
	[ ! -e "$MNT/default/ag/new" ]
	kill -CONT "$(cat "$ETCD_DIR/2/pid")" "$(cat "$ETCD_DIR/3/pid")"
	sh_wait_until 30 sh_jq '.store.stale == false' "$MNT/.status"
	echo from-b >"$MNT2/default/ag/k"
	sh_wait_until 20 grep -qx from-b "$MNT/default/ag/k"
	echo after >"$MNT/default/ag/k"
	sh_wait_until 20 grep -qx after "$MNT2/default/ag/k"
	cat "$MNT/.health"
	run jq -s '[.[].commit_ts]' "$MNT/.events/all.jsonl"
	assert_output "$(jq -n '[1, 2, 3]')"
}

@test "stale_reads=eio refuses reads while the store cannot be reached" {
	"$STATEHOUSECTL" init "etcd://$EPS/$VOL"
	sh_mount -o "store=etcd://$(member_ep 1)/$VOL" -o stale_reads=eio
	echo v >"$MNT/default/ag/k"
	[ "$(cat "$MNT/default/ag/k")" = v ]
	kill -STOP "$(cat "$ETCD_DIR/2/pid")" "$(cat "$ETCD_DIR/3/pid")"
	sh_wait_until 20 sh_jq '.store.stale == true' "$MNT/.status"
	run sh_errno read "$MNT/default/ag/k"
	assert_output EIO
	kill -CONT "$(cat "$ETCD_DIR/2/pid")" "$(cat "$ETCD_DIR/3/pid")"
	sh_wait_until 30 sh_jq '.store.stale == false' "$MNT/.status"
	[ "$(cat "$MNT/default/ag/k")" = v ]
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o stale_reads=maybe
	assert_failure 2
	assert_output --partial "stale_reads"
}
