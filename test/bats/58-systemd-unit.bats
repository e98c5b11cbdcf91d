#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# contrib/systemd/statehoused@.service: it verifies with systemd-analyze, and the daemon
# works within the privileges the unit leaves it (no systemd as PID 1 is needed for either).

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
		'ExecStartPre=-/usr/bin/fusermount3 -u -z %f' 'ExecStopPost=-/usr/bin/fusermount3 -u -z %f' \
		'CapabilityBoundingSet=CAP_SYS_ADMIN' 'DeviceAllow=/dev/fuse rw'; do
		grep -q "^$line" "$UNIT" || fail "the unit lacks '$line'"
	done
	# No option that would give the service its own mount namespace (the mount would be
	# invisible outside it).
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
