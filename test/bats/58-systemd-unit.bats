#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# contrib/systemd/statehoused@.service: it verifies with systemd-analyze, the daemon works
# within the privileges the unit leaves it, and the unit's own commands, run in systemd's
# order around a killed daemon, keep the dead mount through the restart window (no
# systemd as PID 1 is needed for any of it).

load helper

UNIT="$REPO_ROOT/contrib/systemd/statehoused@.service"

setup() {
	load_libs
	sh_setup_dirs
	SH_PID=
}

teardown() {
	sh_umount_below "$SH_TMP" || true
	sh_default_teardown
}

# unit_copy: the unit in $SH_TMP/units with ExecStart pointing at the daemon under test
# (verify checks that the binary exists; /usr/local/sbin is where `meson install` puts it,
# but nothing is installed here) and $SH_TMP/man holding the built man page it links to.
unit_copy() {
	mkdir -p "$SH_TMP/units" "$SH_TMP/man/man5"
	grep -q '^ExecStart=/usr/local/sbin/statehoused ' "$UNIT"
	sed "s|^ExecStart=/usr/local/sbin/statehoused |ExecStart=$STATEHOUSED |" "$UNIT" \
		>"$SH_TMP/units/statehoused@.service"
	ln -s "$REPO_ROOT/build/doc/statehouse.5" "$SH_TMP/man/man5/statehouse.5"
}

@test "the systemd unit passes systemd-analyze verify, as a template and as an instance" {
	command -v systemd-analyze >/dev/null || sh_skip "systemd-analyze is missing (Debian package systemd)"
	[ -f "$REPO_ROOT/build/doc/statehouse.5" ] || sh_skip "build/doc/statehouse.5 was not built (scdoc)"
	unit_copy
	cd "$SH_TMP/units"
	run env MANPATH="$SH_TMP/man" systemd-analyze verify "$SH_TMP/units/statehoused@.service"
	assert_success
	assert_output ""
	run env MANPATH="$SH_TMP/man" systemd-analyze verify "$SH_TMP/units/statehoused@$(systemd-escape --path "$MNT").service"
	assert_success
	assert_output ""
}

@test "the unit's instance name is the escaped mountpoint and its settings are the documented ones" {
	run systemd-escape --path --template=statehoused@.service /srv/state
	assert_output "statehoused@srv-state.service"
	for line in 'Type=forking' 'Restart=always' 'RestartSec=1' '#MemoryMax=' \
		'ExecStartPre=-/usr/bin/mkdir -p %f' \
		'CapabilityBoundingSet=CAP_SYS_ADMIN' 'DeviceAllow=/dev/fuse rw'; do
		grep -q "^$line" "$UNIT" || fail "the unit lacks '$line'"
	done
	# No option that would give the service its own mount namespace (the mount would be
	# invisible outside it).
	# Nothing unmounts when the daemon dies: the dead mount answers ENOTCONN until the next
	# daemon detaches it.
	run grep -E '^Exec(StopPost|StartPre|Stop)=.*(fusermount|umount)' "$UNIT"
	assert_failure
	run grep -E '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|TemporaryFileSystem|BindPaths|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|PrivateMounts|MountFlags|DynamicUser)=' "$UNIT"
	assert_failure
}

@test "with only CAP_SYS_ADMIN and no_new_privs, as the unit grants, the daemon mounts, serves and replaces a killed one" {
	command -v setpriv >/dev/null || sh_skip "setpriv is missing (Debian package util-linux)"
	[ "$(id -u)" -eq 0 ] || sh_skip "the unit runs the daemon as root; this test must too"
	local cage=(setpriv --no-new-privs --bounding-set=-all,+sys_admin --inh-caps=-all)
	"${cage[@]}" "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) >>"$LOG" 2>&1 3>&- &
	SH_PID=$!
	sh_wait_mounted "$MNT" "$SH_PID"
	grep -q '^CapBnd:	0*200000$' "/proc/$SH_PID/status" || fail "bounding set: $(grep CapBnd "/proc/$SH_PID/status")"
	echo kept >"$MNT/default/a/k"
	sh_kill9
	# The new daemon detaches the dead mount itself (umount2 needs CAP_SYS_ADMIN only).
	"${cage[@]}" "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) >>"$LOG" 2>&1 3>&- &
	SH_PID=$!
	sh_wait_mounted "$MNT" "$SH_PID"
	run cat "$MNT/default/a/k"
	assert_output kept
	[ "$(sh_mount_count "$MNT")" -eq 1 ]
}

# unit_run KEY: run the unit's KEY= lines (ExecStartPre, ExecStart, ExecStopPost) in order,
# as systemd would for this instance ($MNT, data dir $DATA): %f is the mountpoint, the
# daemon is the one under test, a leading "-" means a failure is ignored.
unit_run() {
	local line cmd ignore
	while IFS= read -r line; do
		cmd=${line#*=}
		ignore=0
		[[ "$cmd" == -* ]] && { ignore=1; cmd=${cmd#-}; }
		cmd=${cmd//%f/$MNT}
		cmd=${cmd//'${STATEHOUSE_DATA}'/$DATA}
		cmd=${cmd//'$STATEHOUSE_OPTS'/$(sh_mode_args)}
		cmd=${cmd/#\/usr\/local\/sbin\/statehoused /$STATEHOUSED }
		echo "unit: $1: $cmd" >>"$LOG"
		eval "$cmd" >>"$LOG" 2>&1 3>&- </dev/null || [ $ignore -eq 1 ] ||
			{ echo "$1 failed: $cmd" >&2; return 1; }
	done < <(grep "^$1=" "$UNIT")
}

@test "in the restart window after a kill the unit leaves the dead mount: reads fail with ENOTCONN, writes fail, nothing lands below" {
	grep -q '^Type=forking$' "$UNIT"
	unit_run ExecStartPre
	unit_run ExecStart
	SH_PID=$(sh_daemon_pid "$MNT") || fail "the unit's ExecStart left no daemon serving $MNT"
	mkdir -p "$MNT/default/a"
	echo kept >"$MNT/default/a/k"
	# The daemon dies; systemd runs ExecStopPost, then waits RestartSec.
	kill -9 "$SH_PID"
	sh_wait_exit "$SH_PID"
	unit_run ExecStopPost
	run sh_errno read "$MNT/default/a/k"
	assert_output ENOTCONN
	run sh_errno stat "$MNT/default/a"
	assert_output ENOTCONN
	run sh_errno mkdir "$MNT/default"
	assert_output ENOTCONN
	run sh_errno write "$MNT/default/a/new" lost
	assert_output ENOTCONN
	run bash -c 'mkdir -p "$1/default/a" && echo lost >"$1/default/a/new"' _ "$MNT"
	assert_failure
	run "$STATEHOUSECTL" -m "$MNT" get a k
	assert_failure
	assert_output --partial "Transport endpoint is not connected"
	# The restart: the unit's ExecStartPre and ExecStart again.
	unit_run ExecStartPre
	unit_run ExecStart
	SH_PID=$(sh_daemon_pid "$MNT") || fail "the restart left no daemon serving $MNT"
	run cat "$MNT/default/a/k"
	assert_output kept
	[ ! -e "$MNT/default/a/new" ]
	[ "$(sh_mount_count "$MNT")" -eq 1 ]
	# A clean stop (systemctl stop: SIGTERM) unmounts; the directory below stayed empty.
	kill -TERM "$SH_PID"
	sh_wait_exit "$SH_PID"
	unit_run ExecStopPost
	[ "$(sh_mount_count "$MNT")" -eq 0 ]
	run ls -A "$MNT"
	assert_output ""
}
