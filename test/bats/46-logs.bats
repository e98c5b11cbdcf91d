#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Where a daemonised statehoused logs: -o log=FILE, log=stderr, the default file in DATADIR
# when there is no /dev/log, and SIGHUP reopening the file after logrotate moved it.

load helper

setup() {
	load_libs
	sh_setup_dirs
}

teardown() {
	local rc=0
	sh_umount_below "$SH_TMP" || rc=1
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# start ARGS...: a daemonised statehoused on DATA and MNT; its stderr goes to $SH_TMP/start.err.
start() {
	"$STATEHOUSED" "$DATA" "$MNT" $(sh_mode_args) "$@" 2>"$SH_TMP/start.err" 3>&- </dev/null ||
		fail "statehoused exited $?: $(cat "$SH_TMP/start.err")"
	PID=$(sh_daemon_pid "$MNT") || fail "no statehoused serves $MNT"
}

# stop: unmount and wait for the daemon to exit (its last lines are logged by then).
stop() {
	umount "$MNT"
	sh_wait_exit "$PID"
}

# A line of the log file: UTC time to the millisecond, the daemon's pid, the message.
LINE_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z statehoused\[[0-9]+\]: '

@test "daemonised with -o log=FILE, the start's messages go to the caller's stderr and the file, the later ones to the file only" {
	f="$SH_TMP/statehoused.log"
	start -o "log=$f"
	grep -qF "statehoused: serving '$(realpath "$DATA")' at '$MNT'" "$SH_TMP/start.err"
	echo v >"$MNT/default/a/k"
	# the worker serving the mount logs the stop (PID is its supervisor's)
	wpid=$(jq -r .pid "$MNT/.status")
	stop
	grep -qE "${LINE_RE}serving '$(realpath "$DATA")' at '$MNT'$" "$f" || fail "log: $(cat "$f")"
	grep -qE "^[^ ]+ statehoused\[$wpid\]: unmounted '$MNT'; stopping$" "$f" || fail "log: $(cat "$f")"
	grep -qE "${LINE_RE}snapshot at commit 1 written" "$f"
	run grep -cvE "$LINE_RE" "$f"
	assert_output 0
	refute grep -q unmounted "$SH_TMP/start.err"
	[ "$(stat -c %a "$f")" = 640 ]
}

@test "SIGHUP after the log file was moved opens a new one, and the daemon keeps serving" {
	f="$SH_TMP/statehoused.log"
	start -o "log=$f"
	echo 1 >"$MNT/default/a/k"
	mv "$f" "$f.1"
	kill -HUP "$PID"
	sh_wait_until 10 test -f "$f"
	# Still the same daemon, serving reads and commits.
	[ "$(sh_daemon_pid "$MNT")" = "$PID" ]
	run cat "$MNT/default/a/k"
	assert_output 1
	echo 2 >"$MNT/default/a/k"
	run cat "$MNT/default/a/k"
	assert_output 2
	stop
	grep -qF "unmounted '$MNT'; stopping" "$f" || fail "new log: $(cat "$f")"
	refute grep -q unmounted "$f.1"
	grep -qF "serving '$(realpath "$DATA")'" "$f.1"
}

@test "daemonised with -o log=stderr, the later messages go to the caller's stderr" {
	start -o log=stderr
	stop
	grep -qF "statehoused: unmounted '$MNT'; stopping" "$SH_TMP/start.err" || fail "stderr: $(cat "$SH_TMP/start.err")"
	[ ! -e "$DATA/statehoused.log" ]
}

@test "daemonised with no /dev/log, messages go to DATADIR/statehoused.log" {
	# A mount namespace whose /dev has only what the daemon needs: no /dev/log.
	run unshare --mount --propagation private sh -ec '
		mount -t tmpfs -o mode=0755 tmpfs /dev
		mknod -m 0666 /dev/null c 1 3; mknod -m 0666 /dev/zero c 1 5
		mknod -m 0666 /dev/urandom c 1 9; mknod -m 0666 /dev/random c 1 8
		mknod -m 0600 /dev/fuse c 10 229
		"$0" "$1" "$2" 3>&-
		echo v >"$2/default/a/k"
		pid=$(cat "$1/statehoused.lock")
		umount "$2"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done' "$STATEHOUSED" "$DATA" "$MNT"
	assert_success
	f="$DATA/statehoused.log"
	grep -qE "${LINE_RE}unmounted '$MNT'; stopping$" "$f" || fail "log: $(cat "$f" 2>&1)"
	grep -qE "${LINE_RE}serving '$(realpath "$DATA")' at '$MNT'$" "$f"
}

@test "-o log= with a relative path is refused (exit 2), and a log file that cannot be opened fails the start (exit 1)" {
	run "$STATEHOUSED" "$DATA" "$MNT" -o log=statehoused.log
	assert_failure 2
	assert_output "statehoused: log must be syslog, stderr or an absolute file path, not 'statehoused.log'"
	[ ! -e "$DATA" ]
	run "$STATEHOUSED" "$DATA" "$MNT" -o "log=$SH_TMP/no/such/dir/x.log"
	assert_failure 1
	assert_output "statehoused: error: cannot open log file '$SH_TMP/no/such/dir/x.log': No such file or directory"
	refute sh_is_mounted "$MNT"
}

@test "in the foreground SIGHUP no longer stops the daemon; with -o log=FILE it reopens the file" {
	f="$SH_TMP/fg.log"
	sh_mount -o "log=$f"
	mv "$f" "$f.1"
	kill -HUP "$SH_PID"
	sh_wait_until 10 test -f "$f"
	echo v >"$MNT/default/a/k"
	run cat "$MNT/default/a/k"
	assert_output v
	sh_umount
	grep -qF "unmounted '$MNT'; stopping" "$f"
	# Until the mount was live the messages went to stderr too.
	grep -qF "statehoused: serving" "$LOG"
	refute grep -q unmounted "$LOG"
}
