#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The daemon's life: start and refusals, daemonising, .health and .version, -o options,
# and what a clean unmount and remount keeps.

load helper

setup() {
	load_libs
	sh_setup_dirs
	MNT2="$SH_TMP/mnt2"
	mkdir -p "$MNT2"
}

teardown() {
	local rc=0
	# Daemons that tests started themselves, or that daemonised, are not in $SH_PID.
	if [ -z "${SH_PID:-}" ] && sh_is_mounted "$MNT"; then
		SH_PID=$(sh_daemon_pid "$MNT") || SH_PID=
	fi
	sh_umount || rc=1
	sh_umount_below "$SH_TMP" || rc=1
	sh_default_teardown || rc=1
	return $rc
}

# start_should_fail ARGS...: run the daemon with ARGS (its output in $output); it must exit
# by itself, non-zero. A daemon that wrongly starts is stopped after 20 s.
start_should_fail() {
	run timeout 20 "$STATEHOUSED" "$@"
	if [ "$status" -eq 124 ]; then
		fail "statehoused $* was still running after 20 s (expected it to refuse)"
	fi
	assert_failure
}

@test "a missing DATADIR is created at start" {
	[ ! -e "$DATA" ]
	sh_mount
	[ -d "$DATA" ]
	mkdir -p "$MNT/default/agent-1"
	echo hello >"$MNT/default/agent-1/greeting"
	run cat "$MNT/default/agent-1/greeting"
	assert_output hello
	[ -n "$(ls -A "$DATA")" ] || fail "the store is not in $DATA"
}

@test "a second daemon on the same DATADIR exits non-zero saying it is already in use" {
	sh_mount
	start_should_fail "$DATA" "$MNT2" -f $(sh_mode_args)
	assert_output --partial "already in use"
	refute sh_is_mounted "$MNT2"
	run cat "$MNT/.health"
	assert_output ok
}

@test "a DATADIR on a FUSE file system is refused with a message naming FUSE, before anything is made there" {
	sh_mount
	mkdir -p "$MNT/default/agent-1"
	echo kept >"$MNT/default/agent-1/k"
	start_should_fail "$MNT/default" "$MNT2" -f $(sh_mode_args)
	[[ "${output,,}" == *fuse* ]] || fail "the message does not name FUSE: $output"
	refute sh_is_mounted "$MNT2"
	run cat "$MNT/default/agent-1/k"
	assert_output kept
	# a data dir to be made below the mount: refused before a directory is made (a commit)
	before=$(sh_probe_ts)
	start_should_fail "$MNT/default/agent-1/new/data" "$MNT2" -f $(sh_mode_args)
	assert_output "statehoused: error: cannot use data dir '$MNT/default/agent-1/new/data': it is on a FUSE filesystem; SQLite's WAL needs a local filesystem"
	[ ! -e "$MNT/default/agent-1/new" ]
	[ "$(sh_probe_ts)" -eq $((before + 1)) ]
}

@test "a start that fails after it made the data dir removes it, with the directories above it that it made; an existing data dir keeps its store" {
	# blksize is for block-device FUSE mounts: libfuse takes it, the kernel's mount refuses it
	start_should_fail "$SH_TMP/new/deeper/data" "$MNT" -f $(sh_mode_args) -o blksize=4096
	[ "$status" -eq 1 ]
	assert_line "statehoused: error: cannot mount on '$MNT'"
	[ ! -e "$SH_TMP/new" ]
	# daemonised: the child fails after the fork, and the data dir goes all the same
	start_should_fail "$SH_TMP/new/data" "$MNT" $(sh_mode_args) -o blksize=4096
	assert_line "statehoused: error: cannot mount on '$MNT'"
	[ ! -e "$SH_TMP/new" ]
	# the directory above that was there stays; with log_level=debug the removal is said
	mkdir "$SH_TMP/new"
	start_should_fail "$SH_TMP/new/data" "$MNT" -f $(sh_mode_args) -o blksize=4096,log_level=debug
	assert_line "statehoused: debug: removed '$SH_TMP/new/data', which this failed start had made"
	[ -d "$SH_TMP/new" ]
	[ ! -e "$SH_TMP/new/data" ]
	# a data dir that was there is the user's: it stays, store and all
	sh_mount
	echo kept >"$MNT/default/a/k"
	sh_umount
	start_should_fail "$DATA" "$MNT" -f $(sh_mode_args) -o blksize=4096,log_level=debug
	refute_line --partial removed
	sh_mount
	run cat "$MNT/default/a/k"
	assert_output kept
}

@test "a MOUNTPOINT that does not exist makes the daemon exit non-zero with a one-line reason" {
	start_should_fail "$DATA" "$SH_TMP/missing" $(sh_mode_args)
	[ "${#lines[@]}" -eq 1 ] || fail "expected one line, got: $output"
	assert_output --partial "$SH_TMP/missing"
	# The refused start released DATADIR: a daemon on a good mountpoint starts.
	sh_mount
}

@test "a MOUNTPOINT that is a regular file makes the daemon exit non-zero with a one-line reason" {
	touch "$SH_TMP/file"
	start_should_fail "$DATA" "$SH_TMP/file" $(sh_mode_args)
	[ "${#lines[@]}" -eq 1 ] || fail "expected one line, got: $output"
	assert_output --partial "$SH_TMP/file"
	refute sh_is_mounted "$SH_TMP/file"
}

@test "a MOUNTPOINT that holds files is refused before DATADIR is made; -o nonempty mounts over them" {
	mkdir "$MNT/left-behind"
	echo underneath >"$MNT/left-behind/k"
	start_should_fail "$DATA" "$MNT" $(sh_mode_args)
	assert_output "statehoused: error: cannot mount on '$MNT': it is not empty (the mount would hide its files); move them away, or mount over them with -o nonempty"
	refute sh_is_mounted "$MNT"
	[ ! -e "$DATA" ] || fail "the refused start made $DATA"
	# A single dot file is enough to refuse.
	rm -r "$MNT/left-behind"
	touch "$MNT/.hidden"
	start_should_fail "$DATA" "$MNT" $(sh_mode_args)
	assert_output --partial "it is not empty"
	sh_mount -o nonempty
	run cat "$MNT/.health"
	assert_output ok
	[ ! -e "$MNT/.hidden" ]
	sh_umount
	SH_PID=
	# The files below were hidden, never touched.
	[ -f "$MNT/.hidden" ]
}

@test "without -f the daemon returns only once the mount answers, and runs on in the background" {
	# Output to a file, not a pipe: a daemon that kept the pipe open would hang `run`.
	"$STATEHOUSED" "$DATA" "$MNT" $(sh_mode_args) >"$LOG" 2>&1 3>&- </dev/null ||
		fail "statehoused exited $?: $(cat "$LOG")"
	# No waiting: the mount must be live when statehoused has returned.
	sh_is_mounted "$MNT" || fail "statehoused returned before $MNT was mounted"
	run cat "$MNT/.health"
	assert_output ok
	mkdir -p "$MNT/default/agent-1"
	echo hello >"$MNT/default/agent-1/greeting"
	run cat "$MNT/default/agent-1/greeting"
	assert_output hello
	SH_PID=$(sh_daemon_pid "$MNT") || fail "no statehoused process serves $MNT"
	# teardown unmounts and checks that the background daemon exits
}

@test ".health reads ok" {
	sh_mount
	printf 'ok\n' | cmp - "$MNT/.health"
	run sh_errno read "$MNT/.health"
	assert_output OK
}

@test ".version is JSON with the version, the build's git revision, schema, SQLite and libfuse versions" {
	sh_mount
	run jq -e 'type == "object" and has("version") and has("schema") and has("sqlite") and has("libfuse")' "$MNT/.version"
	assert_success
	# git_sha: the commit the daemon was built from, one of this checkout's (the build may
	# predate the newest commit).
	sha=$(jq -r .git_sha "$MNT/.version")
	[[ "$sha" =~ ^[0-9a-f]{12}$ ]] || fail "git_sha is '$sha'"
	git -C "$REPO_ROOT" cat-file -e "$sha^{commit}" || fail "git_sha $sha is no commit of $REPO_ROOT"
	run "$STATEHOUSED" --version
	assert_output --regexp "^statehoused [0-9.]+ \\(git $sha, libfuse 3\\.[0-9.]+, sqlite 3\\.[0-9.]+\\)$"
	run "$STATEHOUSECTL" --version
	assert_output --regexp "^statehousectl [0-9.]+ \\(git $sha\\)$"
	run jq -e 'type == "object" and has("version") and has("schema") and has("sqlite") and has("libfuse")' "$MNT/.version"
	assert_success
	project=$(grep -m 1 -oE "version *: *'[^']+'" "$REPO_ROOT/meson.build" | cut -d "'" -f 2)
	run jq -r .version "$MNT/.version"
	assert_output "$project"
	run jq -r .sqlite "$MNT/.version"
	assert_output "$(pkg-config --modversion sqlite3)"
	run jq -r .libfuse "$MNT/.version"
	assert_output --regexp '^3\.[0-9]+'
}

@test "-o max_value_bytes sets the largest value a write accepts" {
	sh_mount -o max_value_bytes=100
	mkdir -p "$MNT/default/agent-1"
	run sh_errno writen "$MNT/default/agent-1/big" 101
	assert_output EFBIG
	run sh_errno writen "$MNT/default/agent-1/fits" 100
	assert_output OK
	[ "$(stat -c %s "$MNT/default/agent-1/fits")" -eq 100 ]
}

@test "-o max_open_txns sets how many transactions may be open at once" {
	sh_mount -o max_open_txns=2
	mkdir "$MNT/.tx/t1" "$MNT/.tx/t2"
	run sh_errno mkdir "$MNT/.tx/t3"
	assert_output EAGAIN
	rmdir "$MNT/.tx/t1"
	run sh_errno mkdir "$MNT/.tx/t3"
	assert_output OK
}

@test "-o txn_timeout_ms sets the timeout of new transactions" {
	sh_mount -o txn_timeout_ms=300
	T="$MNT/.tx/t"
	mkdir "$T"
	run cat "$T/.timeout_ms"
	assert_output 300
	local i state=
	for ((i = 0; i < 400; i++)); do
		state=$(jq -r .state "$T/.status" 2>/dev/null) || state=
		[ "$state" = expired ] && break
		sleep 0.05
	done
	[ "$state" = expired ] || fail "after 20 s .status still reads: $(cat "$T/.status")"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ETIMEDOUT
}

@test "-o fsync=0 mounts and its commits survive a clean unmount" {
	sh_mount -o fsync=0
	mkdir -p "$MNT/default/agent-1"
	echo relaxed >"$MNT/default/agent-1/k"
	sh_umount
	sh_mount
	run cat "$MNT/default/agent-1/k"
	assert_output relaxed
}

@test "an unknown -o option is refused with a message naming it" {
	start_should_fail "$DATA" "$MNT" -o no_such_option=1 -f $(sh_mode_args)
	assert_output --partial no_such_option
	refute sh_is_mounted "$MNT"
}

@test "a malformed -o value is refused with a message naming the option" {
	start_should_fail "$DATA" "$MNT" -o max_value_bytes=lots -f $(sh_mode_args)
	assert_output --partial max_value_bytes
	refute sh_is_mounted "$MNT"
	# a number with something after it is no number
	start_should_fail "$DATA" "$MNT" -o snapshot_keep=3x -f $(sh_mode_args)
	[ "$status" -eq 2 ]
	assert_output "statehoused: malformed option 'snapshot_keep=3x': a whole number from 1 to 1000 is needed"
	[ ! -e "$DATA" ]
}

@test "every numeric -o option out of range is refused (exit 2) with a message naming it, its value and its range, and nothing is made" {
	local o
	for o in txn_timeout_ms=0 txn_timeout_ms=86400001 max_open_txns=0 max_value_bytes=0 \
		max_value_bytes=1073741825 max_txns_per_user=-1 max_txn_timeout_ms=0 \
		max_txn_timeout_ms=86400001 max_txn_bytes=0 max_txn_bytes=1099511627777 \
		max_user_txn_bytes=-1 max_user_txn_bytes=4398046511105 txn_linger_ms=0 \
		txn_linger_ms=86400001 cache_timeout_s=-1 cache_timeout_s=86401 snapshot_interval=-1 \
		snapshot_interval=100000001 snapshot_keep=0 snapshot_keep=1001 fsync=2 supervise=2 \
		max_open_txns=99999999999999999999; do
		start_should_fail "$DATA" "$MNT" -o "$o" -f $(sh_mode_args)
		[ "$status" -eq 2 ] || fail "-o $o: exit $status"
		assert_output --regexp "^statehoused: option out of range: $o \(from -?[0-9]+ to [0-9]+\)$"
		[ ! -e "$DATA" ] || fail "-o $o made $DATA"
	done
	start_should_fail "$DATA" "$MNT" -o fsync=2 -f
	assert_output "statehoused: option out of range: fsync=2 (from 0 to 1)"
	start_should_fail "$DATA" "$MNT" -o txn_timeout_ms=7200000 -f
	assert_output "statehoused: option out of range: txn_timeout_ms=7200000 is over max_txn_timeout_ms=3600000 (the largest timeout a transaction may have)"
	[ ! -e "$DATA" ]
	refute sh_is_mounted "$MNT"
}

@test "values, versions and commit_ts survive a clean unmount and remount" {
	sh_mount
	local A="$MNT/default/agent-1"
	mkdir -p "$A/step"
	echo one >"$A/k"
	echo two >"$A/k"
	echo doomed >"$A/gone"
	rm "$A/gone"
	head -c 4096 /dev/urandom >"$SH_TMP/blob"
	cp "$SH_TMP/blob" "$A/blob"
	echo s1 >"$A/step/001"
	T="$MNT/.tx/job"
	mkdir "$T"
	echo '{"step":3}' >"$T/default/agent-1/progress"
	mv "$T/.commit.pending" "$T/.commit"
	ts=$(jq -er .commit_ts "$T/.commit")
	rmdir "$T"
	before=$(sh_dump_tree "$MNT")

	sh_umount
	refute sh_is_mounted "$MNT"
	sh_mount

	after=$(sh_dump_tree "$MNT")
	diff <(echo "$before") <(echo "$after")
	cmp "$SH_TMP/blob" "$A/blob"
	run sh_errno stat "$A/gone"
	assert_output ENOENT
	run ls -A "$MNT/.tx"
	assert_output ""
	[ "$(sh_xattr version "$A/k")" -eq 2 ]
	# The counters go on where they stopped: one version per write or delete, one commit_ts
	# per commit, the transaction above being the last commit.
	echo three >"$A/k"
	[ "$(sh_xattr version "$A/k")" -eq 3 ]
	[ "$(sh_xattr commit_ts "$A/k")" -eq $((ts + 1)) ]
	echo back >"$A/gone"
	[ "$(sh_xattr version "$A/gone")" -eq 3 ]
}

@test "the data dir and every file of the store are readable by their owner only" {
	umask 022
	sh_mount -o snapshot_interval=2
	local A="$MNT/default/agent-1"
	mkdir -p "$A"
	for i in 1 2 3 4 5; do echo "secret $i" >"$A/k$i"; done
	sh_umount
	[ -n "$(ls -A "$DATA/snapshots")" ] || fail "no snapshot in $DATA/snapshots"
	run stat -c '%a %n' "$DATA"
	assert_output "700 $DATA"
	# Everything the daemon made: the database, its WAL and shared memory, the lock,
	# the snapshots and their directory.
	run find "$DATA" -mindepth 1 \( -type d ! -perm 0700 -o -type f ! -perm 0600 \) -printf '%m %p\n'
	assert_output ""
	[ "$(find "$DATA" -type f | wc -l)" -ge 3 ]
}

@test "a data dir that other users may read is served, with a warning at start naming it" {
	mkdir -m 755 "$DATA"
	sh_mount
	run cat "$MNT/.health"
	assert_output ok
	grep -F "data dir '$DATA' is open to other users (mode 0755)" "$LOG"
	sh_umount
	chmod 700 "$DATA"
	: >"$LOG"
	sh_mount
	run grep -c 'open to other users' "$LOG"
	assert_output 0
}

@test "df shows the size and free space of the data dir's file system" {
	sh_mount
	read -r size avail < <(df -k --output=size,avail "$DATA" | tail -n 1)
	[ "$size" -gt 0 ] && [ "$avail" -gt 0 ]
	run df -k --output=size "$MNT"
	assert_success
	assert_line --index 1 --regexp "^ *$size\$"
	# Free space is the data dir's too, give or take what others write meanwhile.
	read -r mavail < <(df -k --output=avail "$MNT" | tail -n 1)
	[ "$mavail" -gt 0 ]
	[ "$mavail" -le "$size" ]
	run stat -f -c '%l' "$MNT"
	assert_output 255
}
