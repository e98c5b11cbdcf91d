#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The read-only mount (-o ro_mount=PATH): the same daemon also mounts the live tree alone,
# read-only, at PATH, where opening a file costs no round trip (the kernel's no_open).
# Every commit invalidates its caches before it is answered, as on the main mount; it
# shows the same owners and modes; it comes and goes with the daemon.

A=4001 # user A, owner of the private agent ns/a
B=4002 # user B, a stranger to it

setup() {
	load helper
	load_libs
	sh_setup_dirs
	RO="$SH_TMP/ro"
	mkdir -p "$RO"
	export RO
}

teardown() {
	local rc=0
	sh_default_teardown || rc=1
	if sh_is_mounted "$RO"; then
		echo "the read-only mount outlived the daemon" >&2
		umount -l "$RO" 2>/dev/null
		rc=1
	fi
	return $rc
}

# opens: the OPEN requests the daemon has received, on both mounts.
opens() {
	sed -n 's/^statehouse_fuse_requests_total{op="open"} //p' "$MNT/.metrics"
}

# in_ro UID GID CMD...: CMD as UID:GID (no other groups) in $RO as its working directory.
in_ro() {
	local uid=$1 gid=$2
	shift 2
	(cd "$RO" && exec setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@")
}

# errno_in_ro UID GID op path [arg]: errno.py as UID in $RO (the script on stdin).
errno_in_ro() {
	local uid=$1 gid=$2
	shift 2
	in_ro "$uid" "$gid" "$SH_PYTHON" - "$@" <"$REPO_ROOT/test/bats/errno.py"
}

# ro_gone: neither mount is left.
ro_gone() {
	! sh_is_mounted "$RO" && ! sh_is_mounted "$MNT"
}

@test "the read-only mount shows the live tree alone, read-only, with the same values; .status and statehousectl status name it" {
	sh_mount -o ro_mount="$RO"
	mkdir -p "$MNT/ns/a" "$MNT/other/b"
	echo v >"$MNT/ns/a/k"
	echo w >"$MNT/other/b/k"
	run findmnt -n -o FSTYPE,SOURCE,OPTIONS "$RO"
	assert_output --regexp "^fuse.statehouse-ro +$(realpath "$DATA") +ro,"
	assert_output --regexp '(^|,)default_permissions(,|$)'
	run ls -A "$RO"
	assert_output "$(printf 'ns\nother')"
	run cat "$RO/ns/a/k" "$RO/other/b/k"
	assert_output "$(printf 'v\nw')"
	for name in .tx .at .history .events .follow .status .health .metrics .version .backup; do
		run sh_errno stat "$RO/$name"
		[ "$output" = ENOENT ] || fail "$name: $output, not ENOENT"
	done
	for c in "write $RO/ns/a/k x" "write $RO/ns/a/new x" "unlink $RO/ns/a/k" "mkdir $RO/ns/a/d" \
		"rename $RO/ns/a/k $RO/ns/a/k2" "chmod $RO/ns/a 0700" "setxattr $RO/ns/a/k user.x"; do
		run sh_errno $c
		[ "$output" = EROFS ] || fail "$c: $output, not EROFS"
	done
	run sh_errno stat "$RO/ns/a/nope"
	assert_output ENOENT
	run getfattr -n user.statehouse.version "$RO/ns/a/k"
	assert_failure
	assert_output --partial "Operation not supported"
	run cat "$MNT/ns/a/k"
	assert_output v
	[ "$(jq -r .ro_mount "$MNT/.status")" = "$RO" ]
	run "$STATEHOUSECTL" status "$MNT"
	assert_success
	assert_line "  read-only mount $RO"
	run "$STATEHOUSECTL" status --json "$MNT"
	assert_success
	[ "$(jq -r '.[0].status.ro_mount' <<<"$output")" = "$RO" ]
	sh_remount
	[ "$(jq .ro_mount "$MNT/.status")" = null ]
	refute sh_is_mounted "$RO"
}

@test "reads through the read-only mount send no OPEN: the kernel stops asking after the first ENOSYS" {
	sh_mount -o ro_mount="$RO"
	echo v >"$MNT/default/a/k"
	cat "$RO/default/a/k" >/dev/null
	before=$(opens)
	for i in $(seq 20); do
		[ "$(cat "$RO/default/a/k")" = v ]
	done
	after=$(opens)
	# The one OPEN between is that of .metrics itself, on the main mount.
	[ "$after" -eq $((before + 1)) ] || fail "opens went from $before to $after over 20 reads"
}

@test "a write through the main mount is never followed by a stale read through the read-only mount" {
	sh_mount -o ro_mount="$RO"
	mkdir -p "$MNT/ns/a"
	for i in $(seq 10 59); do
		# Values of one size: the kernel's cached size would not give a stale page away.
		echo "v$i" >"$MNT/ns/a/k"
		[ "$(cat "$RO/ns/a/k")" = "v$i" ] || fail "write $i: read $(cat "$RO/ns/a/k")"
		stat "$RO/ns/a/k" >/dev/null
	done
	for i in $(seq 60 69); do
		mkdir "$MNT/.tx/t$i"
		echo "t$i" >"$MNT/.tx/t$i/ns/a/k"
		sh_commit "$MNT/.tx/t$i"
		[ "$(cat "$RO/ns/a/k")" = "t$i" ] || fail "transaction $i: read $(cat "$RO/ns/a/k")"
	done
	truncate -s 0 "$MNT/ns/a/k"
	[ "$(stat -c %s "$RO/ns/a/k")" = 0 ]
	run cat "$RO/ns/a/k"
	assert_output ""
}

@test "names created, renamed and removed through the main mount appear and disappear on the read-only mount at once" {
	sh_mount -o ro_mount="$RO"
	mkdir -p "$MNT/ns/a"
	echo a >"$MNT/ns/a/a"
	cat "$RO/ns/a/a" >/dev/null
	run sh_errno stat "$RO/ns/a/new"
	assert_output ENOENT
	echo new >"$MNT/ns/a/new"
	run cat "$RO/ns/a/new"
	assert_output new

	mv "$MNT/ns/a/a" "$MNT/ns/a/b"
	run sh_errno stat "$RO/ns/a/a"
	assert_output ENOENT
	run cat "$RO/ns/a/b"
	assert_output a
	# A rename onto a key the read-only mount has cached: it shows the renamed value.
	mv "$MNT/ns/a/new" "$MNT/ns/a/b"
	run cat "$RO/ns/a/b"
	assert_output new

	rm "$MNT/ns/a/b"
	run sh_errno stat "$RO/ns/a/b"
	assert_output ENOENT
	# Deleted and created again.
	echo again >"$MNT/ns/a/b"
	run cat "$RO/ns/a/b"
	assert_output again

	mkdir "$MNT/ns/a/d"
	ls "$RO/ns/a/d" >/dev/null
	rmdir "$MNT/ns/a/d"
	run sh_errno stat "$RO/ns/a/d"
	assert_output ENOENT

	# A transaction that deletes one key and writes another.
	mkdir "$MNT/.tx/t"
	rm "$MNT/.tx/t/ns/a/b"
	echo c >"$MNT/.tx/t/ns/a/c"
	sh_commit "$MNT/.tx/t"
	run sh_errno stat "$RO/ns/a/b"
	assert_output ENOENT
	run cat "$RO/ns/a/c"
	assert_output c
	run ls "$RO/ns/a"
	assert_output c
}

@test "the read-only mount shows the same owners and modes, and the kernel keeps users apart there as on the main mount" {
	sh_mount -o allow_other,ro_mount="$RO"
	mkdir -p "$MNT/ns/a" "$MNT/ns/open"
	echo secret >"$MNT/ns/a/k"
	echo public >"$MNT/ns/open/k"
	chown "$A:$A" "$MNT/ns/a"
	chmod 0700 "$MNT/ns/a"
	main=$(cd "$MNT" && stat -c '%n %u %g %a' ns ns/a ns/a/k ns/open ns/open/k)
	ro=$(cd "$RO" && stat -c '%n %u %g %a' ns ns/a ns/a/k ns/open ns/open/k)
	[ "$main" = "$ro" ] || fail "main: $main; read-only: $ro"
	run in_ro "$A" "$A" cat ns/a/k
	assert_output secret
	run errno_in_ro "$B" "$B" read ns/a/k
	assert_output EACCES
	run errno_in_ro "$B" "$B" stat ns/a/k
	assert_output EACCES
	run in_ro "$B" "$B" cat ns/open/k
	assert_output public
	# A chmod through the main mount reaches the read-only one before it returns.
	chmod 0755 "$MNT/ns/a"
	run in_ro "$B" "$B" cat ns/a/k
	assert_output secret
	chmod 0700 "$MNT/ns/a"
	run errno_in_ro "$B" "$B" read ns/a/k
	assert_output EACCES
}

@test "without allow_other other users cannot enter the read-only mount, as the main one" {
	sh_mount -o ro_mount="$RO"
	echo v >"$MNT/default/a/k"
	run errno_in_ro "$B" "$B" stat default/a/k
	assert_output EACCES
	run cat "$RO/default/a/k"
	assert_output v
}

@test "SIGTERM and an unmount of the main mount each take the read-only mount down, and the daemon exits 0" {
	sh_store_args
	"$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) "${SH_STORE_ARGS[@]}" -o ro_mount="$RO" \
		>>"$LOG" 2>&1 3>&- &
	SH_PID=$!
	sh_wait_mounted "$MNT" "$SH_PID"
	sh_is_mounted "$RO"
	echo v >"$MNT/default/a/k"
	kill -TERM "$SH_PID"
	rc=0
	wait "$SH_PID" || rc=$?
	SH_PID=
	[ "$rc" -eq 0 ] || fail "the daemon exited $rc after SIGTERM"
	ro_gone
	grep -qxF "statehoused: unmounted the read-only mount at '$RO'" "$LOG"

	sh_mount -o ro_mount="$RO"
	sh_is_mounted "$RO"
	run cat "$RO/default/a/k"
	assert_output v
	fusermount3 -u "$MNT"
	sh_wait_until 20 ro_gone
	sh_umount

	# The read-only mount unmounted alone: the main one goes on serving.
	sh_mount -o ro_mount="$RO"
	umount "$RO"
	sh_wait_until 20 grep -qF "statehoused: warning: the read-only mount at '$RO' was unmounted; the main mount goes on serving" "$LOG"
	echo w >"$MNT/default/a/k"
	run cat "$MNT/default/a/k"
	assert_output w
}

@test "after a SIGKILL a restart detaches the dead read-only mount and mounts it again" {
	sh_mount -o ro_mount="$RO"
	echo v >"$MNT/default/a/k"
	sh_kill9
	run sh_errno stat "$RO/default"
	assert_output ENOTCONN
	sh_mount -o ro_mount="$RO"
	[ "$(sh_mount_count "$RO")" = 1 ]
	run cat "$RO/default/a/k"
	assert_output v
}

@test "a start whose read-only mount cannot be made fails saying why, and mounts and makes nothing" {
	local d="$SH_TMP/d2"
	touch "$SH_TMP/file"
	mkdir -p "$SH_TMP/full" && touch "$SH_TMP/full/x"
	check() {
		run "$STATEHOUSED" "$DATA" "$MNT" -f "$@"
		assert_failure 1
		refute sh_is_mounted "$MNT"
		[ ! -e "$DATA" ] || fail "the failed start made $DATA"
	}
	check -o ro_mount="$SH_TMP/nope"
	assert_output "statehoused: error: cannot mount ro_mount on '$SH_TMP/nope': No such file or directory"
	check -o ro_mount=
	assert_output "statehoused: error: cannot mount ro_mount on '': No such file or directory"
	check -o ro_mount="$SH_TMP/file"
	assert_output "statehoused: error: cannot mount ro_mount on '$SH_TMP/file': not a directory"
	check -o ro_mount="$SH_TMP/full"
	assert_output "statehoused: error: cannot mount ro_mount on '$SH_TMP/full': it is not empty (the mount would hide its files); move them away, or mount over them with -o nonempty"
	check -o ro_mount="$MNT"
	assert_output "statehoused: error: cannot mount ro_mount on '$MNT': it is the mountpoint itself"
	mkdir "$MNT/sub"
	check -o nonempty,ro_mount="$MNT/sub"
	assert_output "statehoused: error: cannot mount ro_mount on '$MNT/sub': it is inside the mountpoint '$MNT'"
	check -o nonempty,ro_mount="$SH_TMP"
	assert_output "statehoused: error: cannot mount ro_mount on '$SH_TMP': the mountpoint '$MNT' is inside it"
	rmdir "$MNT/sub"
}

@test "an unlink, a rename, a truncate and a chmod, answered before the notifier runs, leave nothing stale on the read-only mount" {
	STATEHOUSE_NOTIFY_PAUSE_MS=400 sh_mount -o allow_other,ro_mount="$RO"
	if grep -q 'ignoring STATEHOUSE_NOTIFY_PAUSE_MS' "$LOG"; then
		sh_skip "this build has no fault injection (meson -Dfault_injection=true)"
	fi
	mkdir -p "$MNT/ns/a"
	echo a >"$MNT/ns/a/a"
	echo b >"$MNT/ns/a/b"
	echo c >"$MNT/ns/a/c"
	cat "$RO/ns/a/a" "$RO/ns/a/b" "$RO/ns/a/c" >/dev/null
	rm "$MNT/ns/a/a"
	run sh_errno stat "$RO/ns/a/a"
	assert_output ENOENT
	mv "$MNT/ns/a/b" "$MNT/ns/a/c"
	run sh_errno stat "$RO/ns/a/b"
	assert_output ENOENT
	run cat "$RO/ns/a/c"
	assert_output b
	truncate -s 0 "$MNT/ns/a/c"
	run cat "$RO/ns/a/c"
	assert_output ""
	chown "$A:$A" "$MNT/ns/a"
	chmod 0700 "$MNT/ns/a"
	run errno_in_ro "$B" "$B" stat ns/a/c
	assert_output EACCES
}
