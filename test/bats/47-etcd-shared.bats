#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Several mounts share one volume in etcd (-o store=etcd://HOST:PORT/VOLUME): what one
# commits the others serve, with one gap-free commit_ts, first committer wins across
# mounts, the same past on every mount, and the refusals of a volume that is missing,
# of a data dir that belongs to another volume, and of a replica that etcd is behind.
# Each file runs its own etcd (test/etcd/cluster, one member, on the test's tmp dir).

setup_file() {
	ETCD_DIR="$BATS_FILE_TMPDIR/etcd"
	"$BATS_TEST_DIRNAME/../etcd/cluster" start "$ETCD_DIR" 1
	export ETCD_DIR
	ETCD_EP=$(cat "$ETCD_DIR/endpoints")
	export ETCD_EP
}

teardown_file() {
	"$BATS_TEST_DIRNAME/../etcd/cluster" stop "$ETCD_DIR"
}

setup() {
	load helper
	load follow_helper
	load_libs
	sh_setup_dirs
	VOL="v$(basename "$SH_TMP" | tr -cd 'A-Za-z0-9')"
	URI="etcd://$ETCD_EP/$VOL"
	DATA2="$SH_TMP/data2"
	MNT2="$SH_TMP/mnt2"
	LOG2="$SH_TMP/daemon2.log"
	mkdir -p "$MNT2"
	PID2=
	BG_PIDS=()
}

teardown() {
	local rc=0
	sh_kill_bg
	sh_second_teardown || rc=1
	[ ! -d "$SH_TMP/etcd-auth" ] || "$BATS_TEST_DIRNAME/../etcd/cluster" stop "$SH_TMP/etcd-auth"
	sh_default_teardown || rc=1
	return $rc
}

etcdctl_() {
	ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EP" "$@"
}

# mount_b [daemon args...]: the second mount of the volume, on DATA2 at MNT2.
mount_b() {
	local single=()
	[ "${STATEHOUSE_TEST_SINGLE:-0}" = 1 ] && single=(-s)
	"$STATEHOUSED" "$DATA2" "$MNT2" -f "${single[@]}" -o "store=$URI" "$@" >>"$LOG2" 2>&1 3>&- &
	PID2=$!
	LOG="$LOG2" sh_wait_mounted "$MNT2" "$PID2"
}

umount_b() {
	fusermount3 -u "$MNT2"
	wait "$PID2" || true
	PID2=
}

both() {
	"$STATEHOUSECTL" init "$URI"
	sh_mount -o "store=$URI" "$@"
	mount_b "$@"
}

@test "statehousectl init makes a volume once; a second init is refused and changes nothing" {
	run "$STATEHOUSECTL" init "$URI"
	assert_success
	before=$(etcdctl_ get --prefix "/statehouse/$VOL/" -w json | jq -c '[.kvs[] | {key, value}]')
	run "$STATEHOUSECTL" init "$URI"
	assert_failure 1
	assert_output --partial "exists"
	after=$(etcdctl_ get --prefix "/statehouse/$VOL/" -w json | jq -c '[.kvs[] | {key, value}]')
	[ "$before" = "$after" ]
	run "$STATEHOUSECTL" init "etcd://$ETCD_EP/bad/name"
	assert_failure
	run "$STATEHOUSECTL" init "sqlite:"
	assert_failure 2
	assert_output --partial "etcd://"
}

@test "a mount of a volume that does not exist is refused, naming statehousectl init" {
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o "store=$URI"
	assert_failure
	assert_output --partial "statehousectl init"
	! sh_is_mounted "$MNT"
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o "store=etcd://127.0.0.1:1/$VOL"
	assert_failure
	! sh_is_mounted "$MNT"
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o etcd_commit_timeout_ms=10
	assert_failure 2
	assert_output --partial "store=etcd://"
}

@test "a write on one mount is read on the other, whose cached page and names are invalidated" {
	both -o cache_timeout_s=3600
	echo one >"$MNT/default/ag/k"
	sh_wait_until 10 test -f "$MNT2/default/ag/k"
	sh_wait_until 10 grep -qx one "$MNT2/default/ag/k"
	# B has the value, its name and the directory listing in the kernel's caches now.
	[ "$(cat "$MNT2/default/ag/k")" = one ]
	ls "$MNT2/default/ag" >/dev/null
	echo two >"$MNT/default/ag/k"
	echo new >"$MNT/default/ag/k2"
	sh_wait_until 10 grep -qx two "$MNT2/default/ag/k"
	sh_wait_until 10 test -f "$MNT2/default/ag/k2"
	run ls "$MNT2/default/ag"
	assert_output "$(printf 'k\nk2')"
	rm "$MNT/default/ag/k2"
	sh_wait_until 10 test ! -e "$MNT2/default/ag/k2"
	# and the other way round
	echo from-b >"$MNT2/default/ag/b"
	sh_wait_until 10 grep -qx from-b "$MNT/default/ag/b"
	run sh_jq '.store.kind == "etcd" and .store.volume == "'"$VOL"'" and .store.reachable' "$MNT/.status"
	assert_success
}

@test "the same key committed on both mounts: one commit, one ESTALE" {
	both
	mkdir "$MNT/.tx/a" "$MNT2/.tx/b"
	echo from-a >"$MNT/.tx/a/default/ag/k"
	echo from-b >"$MNT2/.tx/b/default/ag/k"
	mv "$MNT/.tx/a/.commit.pending" "$MNT/.tx/a/.commit"
	run sh_errno rename "$MNT2/.tx/b/.commit.pending" "$MNT2/.tx/b/.commit"
	assert_output ESTALE
	sh_wait_until 10 grep -qx from-a "$MNT2/default/ag/k"
	[ "$(cat "$MNT/default/ag/k")" = from-a ]
	run sh_jq '.conflict == "write"' "$MNT2/.tx/b/.status"
	assert_success
}

@test "first committer wins without a transaction too: autocommits on both interleave with no gap" {
	both
	for i in $(seq 1 20); do
		echo "a$i" >"$MNT/default/ag/a$i" &
		p1=$!
		echo "b$i" >"$MNT2/default/ag/b$i" &
		wait "$p1" $!
	done
	sh_jq '.head_commit_ts == 40' "$MNT/.status"
	sh_wait_until 10 grep -q '"head_commit_ts":40,' "$MNT2/.status"
	run jq -s '[.[].commit_ts] == [range(1; 41)]' "$MNT/.events/all.jsonl"
	assert_output true
	cmp "$MNT/.events/all.jsonl" "$MNT2/.events/all.jsonl"
	for t in 1 17 40; do
		diff <(cd "$MNT/.at/$t" && find . -type f -exec sh -c 'printf "%s " "$1"; cat "$1"' _ {} \; | sort) \
			<(cd "$MNT2/.at/$t" && find . -type f -exec sh -c 'printf "%s " "$1"; cat "$1"' _ {} \; | sort)
	done
	diff <(ls -l --time-style=+ "$MNT/.history/default/ag/a3") <(ls -l --time-style=+ "$MNT2/.history/default/ag/a3")
	cmp "$MNT/.history/default/ag/a3/1" "$MNT2/.history/default/ag/a3/1"
}

@test "a follower on one mount sees the commits of the other" {
	both
	echo first >"$MNT/default/ag/k"
	sh_wait_until 10 grep -qx first "$MNT2/default/ag/k"
	out="$SH_TMP/follow.out"
	timeout 20 head -n 1 "$MNT2/.follow/since/2/all.jsonl" >"$out" &
	BG_PIDS+=($!)
	sleep 0.3
	echo second >"$MNT/default/ag/k"
	wait "${BG_PIDS[0]}"
	BG_PIDS=()
	run jq -r '.commit_ts' "$out"
	assert_output 2
}

@test "a mount started later catches up; a remount goes on from its replica" {
	"$STATEHOUSECTL" init "$URI"
	sh_mount -o "store=$URI"
	for i in $(seq 1 30); do echo "$i" >"$MNT/default/ag/k$i"; done
	mount_b
	sh_jq '.head_commit_ts == 30' "$MNT2/.status"
	[ "$(cat "$MNT2/default/ag/k30")" = 30 ]
	umount_b
	for i in $(seq 31 40); do echo "$i" >"$MNT/default/ag/k$i"; done
	mount_b
	sh_jq '.head_commit_ts == 40' "$MNT2/.status"
	cmp "$MNT/.events/all.jsonl" "$MNT2/.events/all.jsonl"
}

@test "a data dir that is the replica of another volume is refused" {
	both
	echo x >"$MNT/default/ag/k"
	umount_b
	"$STATEHOUSECTL" init "etcd://$ETCD_EP/${VOL}other"
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=etcd://$ETCD_EP/${VOL}other"
	assert_failure
	assert_output --partial "replica of the volume '$VOL'"
	# a data dir with a log of its own is no replica either
	mkdir -p "$SH_TMP/own" "$SH_TMP/ownmnt"
	"$STATEHOUSED" "$SH_TMP/own" "$SH_TMP/ownmnt"
	echo mine >"$SH_TMP/ownmnt/default/ag/k"
	fusermount3 -u "$SH_TMP/ownmnt"
	sh_wait_until 10 sh -c "! fuser -s '$SH_TMP/own/statehouse.lock' 2>/dev/null"
	sleep 0.5
	run "$STATEHOUSED" "$SH_TMP/own" "$SH_TMP/ownmnt" -f -o "store=$URI"
	assert_failure
	assert_output --partial "log of its own"
}

@test "a replica ahead of etcd (etcd restored from an older backup) is refused" {
	both
	for i in 1 2 3 4; do echo "$i" >"$MNT/default/ag/k"; done
	sh_wait_until 10 grep -q '"head_commit_ts":4,' "$MNT2/.status"
	umount_b
	sh_umount
	# etcd as it was after commit 2: the later records and the head gone
	etcdctl_ del "/statehouse/$VOL/e/00000000000000000003" >/dev/null
	etcdctl_ del "/statehouse/$VOL/e/00000000000000000004" >/dev/null
	etcdctl_ put "/statehouse/$VOL/head" 2 >/dev/null
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=$URI"
	assert_failure
	assert_output --partial "after the volume"
	! sh_is_mounted "$MNT2"
	# the same number, another commit: diverged
	etcdctl_ put "/statehouse/$VOL/head" 4 >/dev/null
	etcdctl_ get --print-value-only "/statehouse/$VOL/e/00000000000000000002" | head -c -1 |
		etcdctl_ put "/statehouse/$VOL/e/00000000000000000004" >/dev/null
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=$URI"
	assert_failure
	assert_output --partial "diverged"
}

@test "retention options are refused on an etcd store" {
	"$STATEHOUSECTL" init "$URI"
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o "store=$URI" -o keep_versions=2
	assert_failure
	assert_output --partial "etcd store"
}

@test "README's Several hosts commands, as written there, with this test's etcd" {
	ETCD=$ETCD_EP
	vol="agents$(basename "$SH_TMP" | tr -cd 'A-Za-z0-9')"
	run "$STATEHOUSECTL" init "etcd://$ETCD/$vol"
	assert_success
	"$STATEHOUSED" "$DATA" "$MNT" -o "store=etcd://$ETCD/$vol" 2>>"$LOG"
	"$STATEHOUSED" "$DATA2" "$MNT2" -o "store=etcd://$ETCD/$vol" 2>>"$LOG2"
	echo hi >"$MNT/default/ag/k"
	sh_wait_until 10 grep -qx hi "$MNT2/default/ag/k"
	run "$STATEHOUSECTL" status "$MNT2"
	assert_success
	assert_line --regexp "store +etcd volume $vol: ok"
	assert_line --regexp "replica lag +0 commits \(etcd at commit_ts 1\)"
	run "$STATEHOUSECTL" --json status "$MNT2"
	assert_success
	jq -e '.[0].status.store | .reachable and (.stale | not) and .replica_lag == 0' <<<"$output"
	"$STATEHOUSECTL" umount "$MNT2"
	"$STATEHOUSECTL" umount "$MNT"
}

@test "a max_value_bytes that etcd's request limit cannot take is refused, naming the etcd flag" {
	"$STATEHOUSECTL" init "$URI"
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o "store=$URI" -o max_value_bytes=2000000
	assert_failure 1
	assert_output --partial "raise etcd's --max-request-bytes"
	refute sh_is_mounted "$MNT"
	# the default (1 MiB) fits etcd's default (1.5 MiB), and such a value commits
	sh_mount -o "store=$URI"
	head -c 1048576 /dev/urandom >"$SH_TMP/big"
	cp "$SH_TMP/big" "$MNT/default/ag/big"
	cmp "$SH_TMP/big" "$MNT/default/ag/big"
}

@test "etcd's users: a mount with the right etcd_auth_file serves, a wrong password is refused" {
	local dir="$SH_TMP/etcd-auth" ep
	"$BATS_TEST_DIRNAME/../etcd/cluster" start "$dir" 1
	ep=$(cat "$dir/endpoints")
	ETCDCTL_API=3 etcdctl --endpoints "$ep" user add root:s3cret >/dev/null
	ETCDCTL_API=3 etcdctl --endpoints "$ep" auth enable >/dev/null
	printf 'root:s3cret\n' >"$SH_TMP/auth"
	printf 'root:wrong\n' >"$SH_TMP/badauth"
	chmod 600 "$SH_TMP/auth" "$SH_TMP/badauth"
	run "$STATEHOUSECTL" init "etcd://$ep/$VOL"
	assert_failure 1
	"$STATEHOUSECTL" init "etcd://$ep/$VOL" -o "etcd_auth_file=$SH_TMP/auth"
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=etcd://$ep/$VOL" -o "etcd_auth_file=$SH_TMP/badauth"
	assert_failure
	refute sh_is_mounted "$MNT2"
	sh_mount -o "store=etcd://$ep/$VOL" -o "etcd_auth_file=$SH_TMP/auth"
	echo v >"$MNT/default/ag/k"
	[ "$(cat "$MNT/default/ag/k")" = v ]
	[ "$(ETCDCTL_API=3 etcdctl --endpoints "$ep" --user root:s3cret get --print-value-only "/statehouse/$VOL/head")" = 1 ]
	sh_umount
	"$BATS_TEST_DIRNAME/../etcd/cluster" stop "$dir"
}

@test "a record missing or damaged in etcd refuses the start of a mount that must copy it" {
	"$STATEHOUSECTL" init "$URI"
	sh_mount -o "store=$URI"
	for i in 1 2 3; do echo "$i" >"$MNT/default/ag/k"; done
	etcdctl_ del "/statehouse/$VOL/e/00000000000000000002" >/dev/null
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=$URI"
	assert_failure 1
	assert_output --partial "commit 2 of the volume '$VOL' in etcd is missing or damaged"
	refute sh_is_mounted "$MNT2"
	printf 'SHE1 not a record' | etcdctl_ put "/statehouse/$VOL/e/00000000000000000002" >/dev/null
	run "$STATEHOUSED" "$DATA2" "$MNT2" -f -o "store=$URI"
	assert_failure 1
	assert_output --partial "missing or damaged"
	# the first mount, whose replica holds them, serves on
	[ "$(cat "$MNT/default/ag/k")" = 3 ]
}
