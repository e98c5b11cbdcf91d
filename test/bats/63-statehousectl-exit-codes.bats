#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# statehousectl when the mount is not answering: the exit-code table (1 for what is not
# there, 3 for a dead mount, a path that is no statehouse mount or a failing store), what
# status says to do about a dead mount, and tail -f across restarts of the daemon.

bats_require_minimum_version 1.5.0

setup() {
	load helper
	load_libs
	sh_setup_dirs
	unset STATEHOUSE_MOUNT
	SH_PID=
	TAIL_PID=
	DATA_REAL="$(realpath -m "$DATA")"
}

teardown() {
	local rc=0
	# a tail -f blocks in a .follow read: it must go before the unmount
	if [ -n "$TAIL_PID" ]; then
		kill "$TAIL_PID" 2>/dev/null || true
		wait "$TAIL_PID" 2>/dev/null || true
	fi
	sh_umount || rc=1
	if sh_is_mounted "$MNT"; then umount -l "$MNT" 2>/dev/null || true; fi
	# daemons that statehousectl mount started run on in the background
	sh_umount_below "$SH_TMP" || rc=1
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# ctl ARGS...: statehousectl on this test's mount.
ctl() {
	"$STATEHOUSECTL" -m "$MNT" "$@"
}

# last_commit_ts FILE N: the last line of FILE (JSON Lines) has commit_ts N.
last_commit_ts() {
	[ "$(tail -n 1 "$1" | jq -r .commit_ts)" = "$2" ]
}

# commit_ts_of FILE: the commit_ts of FILE's JSON lines, space-separated.
commit_ts_of() {
	jq -r .commit_ts "$1" | paste -sd' '
}

# start_tail ARGS...: statehousectl --json tail ARGS in the background, its output in
# $SH_TMP/out and $SH_TMP/err.
start_tail() {
	"$STATEHOUSECTL" -m "$MNT" --json tail "$@" >"$SH_TMP/out" 2>"$SH_TMP/err" 3>&- &
	TAIL_PID=$!
}

# in_etc DIR CMD...: CMD in a private mount namespace whose /etc is DIR.
in_etc() {
	local etc=$1
	shift
	unshare -m --propagation private sh -c 'mount --bind "$1" /etc && shift && exec "$@"' - "$etc" "$@"
}

# quoted S: S as statehousectl quotes it for a shell (in single quotes unless it is plain).
quoted() {
	if [[ "$1" =~ ^[A-Za-z0-9/._+=:,@%-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "$1"; fi
}

@test "exit 1 for what is not there, 2 for a usage error, 3 for a path that is no statehouse mount: missing, a file, a plain directory" {
	sh_mount
	ctl put a k v
	run -0 ctl get a k
	assert_output v
	run -1 --separate-stderr ctl get a nokey
	assert_equal "$stderr" "statehousectl: no key 'nokey' for agent 'a' in namespace 'default'"
	run -1 ctl get nobody k
	run -1 ctl txn commit none
	run -2 ctl get a
	run -3 --separate-stderr "$STATEHOUSECTL" -m "$SH_TMP/nowhere" get a k
	assert_equal "$stderr" "statehousectl: '$SH_TMP/nowhere' is not a statehouse mount: the path does not exist"
	STATEHOUSE_MOUNT="$SH_TMP/nowhere" run -3 --separate-stderr "$STATEHOUSECTL" get a k
	assert_equal "$stderr" "statehousectl: '$SH_TMP/nowhere' is not a statehouse mount (\$STATEHOUSE_MOUNT): the path does not exist"
	touch "$SH_TMP/file"
	run -3 --separate-stderr "$STATEHOUSECTL" -m "$SH_TMP/file" keys a
	assert_equal "$stderr" "statehousectl: '$SH_TMP/file' is not a statehouse mount: it is not a directory"
	mkdir "$SH_TMP/plain"
	run -3 --separate-stderr "$STATEHOUSECTL" -m "$SH_TMP/plain" put a k w
	assert_equal "$stderr" "statehousectl: '$SH_TMP/plain' is not a statehouse mount"
	run -3 --separate-stderr "$STATEHOUSECTL" status "$SH_TMP/nowhere"
	assert_equal "$stderr" "statehousectl: '$SH_TMP/nowhere' is not a statehouse mount: the path does not exist"
	run -3 --separate-stderr "$STATEHOUSECTL" umount "$SH_TMP/nowhere"
	assert_equal "$stderr" "statehousectl: '$SH_TMP/nowhere' is not a statehouse mount: the path does not exist"
	run -0 ctl get a k
	assert_output v
}

@test "every command on a mount whose daemon was SIGKILLed exits 3 (ENOTCONN); umount detaches it, and then the plain directory exits 3 too" {
	sh_mount
	ctl put a k v
	ctl txn begin t
	sh_kill9
	local cmd
	for cmd in "get a k" "put a k w" "rm a k" "keys a" "agents" "history a k" "replay a" \
		"tail a" "tail a -f" "tail a -f --no-wait" "dump a" "inspect a" "health" "version" \
		"backup $SH_TMP/copy.db" "txn begin" "txn commit t" "txn abort t" "status"; do
		# shellcheck disable=SC2086 # the words of cmd are its arguments
		run timeout 20 "$STATEHOUSECTL" -m "$MNT" $cmd
		[ "$status" -eq 3 ] || fail "statehousectl $cmd exited $status: $output"
	done
	run -3 --separate-stderr ctl get a k
	assert_equal "$stderr" "statehousectl: cannot read key 'k' of agent 'a': Transport endpoint is not connected (the daemon is gone: see statehousectl status)"
	STATEHOUSE_MOUNT="$MNT" run -3 "$STATEHOUSECTL" get a k
	[ ! -e "$SH_TMP/copy.db" ]
	run -0 "$STATEHOUSECTL" umount "$MNT"
	run -3 --separate-stderr ctl get a k
	assert_equal "$stderr" "statehousectl: '$MNT' is not a statehouse mount"
}

@test "when the store fails (.health EIO) health and status exit 3; a commit that fails exits 1" {
	export STATEHOUSE_FAULT=after=1,code=eio
	sh_mount
	unset STATEHOUSE_FAULT
	ctl put a k first
	run -1 --separate-stderr ctl put a k second
	assert_equal "$stderr" "statehousectl: cannot write key 'k' of agent 'a': Input/output error"
	run -3 --separate-stderr ctl health
	assert_equal "$stderr" "statehousectl: cannot read '$MNT/.health': Input/output error"
	run -3 "$STATEHOUSECTL" status "$MNT"
	assert_line -n 0 "$MNT: unhealthy"
	assert_line "  health          Input/output error"
	run -0 ctl get a k
	assert_output first
}

@test "status on a dead mount says how to restart the daemon, as it was mounted, and the command it prints brings the data back" {
	sh_mount -o allow_other
	ctl put a k v
	sh_kill9
	run -3 "$STATEHOUSECTL" status "$MNT"
	assert_line -n 0 "$MNT: dead (Transport endpoint is not connected)"
	assert_line "  data dir        $DATA_REAL"
	assert_line "  fix             restart the daemon: statehousectl mount $DATA_REAL $MNT -o allow_other"
	assert_line "  or              detach the dead mount: statehousectl umount $MNT  (or: fusermount3 -u -z $MNT)"
	run -3 "$STATEHOUSECTL" --json status "$MNT"
	jq -e --arg m "$MNT" --arg d "$DATA_REAL" '.[0].state == "dead" and
		.[0].fix == "statehousectl mount \($d) \($m) -o allow_other" and
		.[0].detach == "statehousectl umount \($m)  (or: fusermount3 -u -z \($m))"' <<<"$output"
	fix=$(jq -r '.[0].fix' <<<"$output")
	statehousectl() { "$STATEHOUSECTL" "$@"; }
	eval "$fix"
	run -0 ctl get a k
	assert_output v
	[ "$(sh_mount_count "$MNT")" -eq 1 ]
	run -0 findmnt -n -o FS-OPTIONS "$MNT"
	assert_output --regexp '(^|,)allow_other(,|$)'
}

@test "status names systemctl restart for the mount of a statehoused@ unit, and mount MNT for an fstab line" {
	command -v systemd-escape >/dev/null || sh_skip "systemd-escape is missing (Debian package systemd)"
	sh_mount
	sh_kill9
	inst=$(systemd-escape --path "$MNT")
	mkdir -p "$SH_TMP/etc/statehouse"
	printf 'UUID=x / ext4 defaults 0 1\n' >"$SH_TMP/etc/fstab"
	run -3 in_etc "$SH_TMP/etc" "$STATEHOUSECTL" status "$MNT"
	assert_line "  fix             restart the daemon: statehousectl mount $DATA_REAL $MNT"
	printf '%s  %s/  fuse.statehouse  defaults,nofail  0  0\n' "$DATA_REAL" "$MNT" >>"$SH_TMP/etc/fstab"
	run -3 in_etc "$SH_TMP/etc" "$STATEHOUSECTL" status "$MNT"
	assert_line "  fix             restart the daemon: mount $MNT"
	# the unit's environment file makes the mount the unit's
	touch "$SH_TMP/etc/statehouse/$inst.env"
	run -3 in_etc "$SH_TMP/etc" "$STATEHOUSECTL" --json status "$MNT"
	jq -e --arg fix "systemctl restart $(quoted "statehoused@$inst.service")" '.[0].fix == $fix' <<<"$output"
	# and so does the unit's default data dir, /var/lib/statehouse/<instance>
	rm "$SH_TMP/etc/statehouse/$inst.env"
	mkdir -p "$SH_TMP/var/lib/statehouse/$inst"
	run -0 unshare -m --propagation private bash -c '
		mount --bind "$1/var" /var || exit 10
		"$2" "/var/lib/statehouse/$3" "$4" -f >/dev/null 2>&1 3>&- &
		pid=$!
		for i in $(seq 400); do [ -f "$4/.health" ] && break; sleep 0.05; done
		kill -9 $pid
		wait $pid
		"$5" status "$4"
		echo "status exited $?"
		umount -l "$4"' - "$SH_TMP" "$STATEHOUSED" "$inst" "$MNT" "$STATEHOUSECTL"
	assert_line "  data dir        /var/lib/statehouse/$inst"
	assert_line "  fix             restart the daemon: systemctl restart $(quoted "statehoused@$inst.service")"
	assert_line "status exited 3"
}

@test "tail -f waits while the daemon is down (killed, or stopped with the mountpoint left a plain directory) and goes on from the last commit it printed: none lost, none repeated" {
	sh_mount
	for i in 1 2 3; do ctl put a k "$i"; done
	start_tail a -f
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 3
	# a commit, then the kill at once: printed before or after the restart, but once
	ctl put a k 4
	sh_kill9
	sh_wait_until 20 grep -q "^statehousectl: '$MNT' is not answering (.*); waiting for it to come back$" "$SH_TMP/err"
	kill -0 "$TAIL_PID"
	sh_mount
	for i in 5 6; do ctl put a k "$i"; done
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 6
	[ "$(commit_ts_of "$SH_TMP/out")" = "1 2 3 4 5 6" ]
	# a clean stop (SIGTERM): the mountpoint is a plain directory until the next start
	kill -TERM "$SH_PID"
	wait "$SH_PID"
	SH_PID=
	refute sh_is_mounted "$MNT"
	sh_wait_until 20 test "$(grep -c 'is not answering' "$SH_TMP/err")" -eq 2
	kill -0 "$TAIL_PID"
	sh_mount
	ctl put a k 7
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 7
	# killed, and the dead mount detached by hand: a plain directory again
	sh_kill9
	umount -l "$MNT"
	sh_wait_until 20 test "$(grep -c 'is not answering' "$SH_TMP/err")" -eq 3
	sh_mount
	ctl put a k 8
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 8
	[ "$(commit_ts_of "$SH_TMP/out")" = "1 2 3 4 5 6 7 8" ]
	jq -e -s 'map(.ops[0].value) == [1, 2, 3, 4, 5, 6, 7, 8]' "$SH_TMP/out"
	run cat "$SH_TMP/err"
	# 4 was printed before the kill or after the restart
	assert_line -n 1 --regexp "^statehousectl: '$MNT' answers again; following agent 'a' from commit_ts [45]$"
	assert_line -n 3 "statehousectl: '$MNT' answers again; following agent 'a' from commit_ts 7"
	assert_line -n 5 "statehousectl: '$MNT' answers again; following agent 'a' from commit_ts 8"
	[ "${#lines[@]}" -eq 6 ]
	kill -0 "$TAIL_PID"
}

@test "tail -f --no-wait exits 3 when the daemon dies under it" {
	sh_mount
	ctl put a k 1
	start_tail a -f --no-wait
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 1
	sh_kill9
	st=0
	wait "$TAIL_PID" || st=$?
	TAIL_PID=
	[ "$st" -eq 3 ] || fail "tail -f --no-wait exited $st: $(cat "$SH_TMP/err")"
	run cat "$SH_TMP/err"
	assert_output --regexp "^statehousectl: lost '$MNT' while following agent 'a': (Software caused connection abort \(the daemon died during the request|Transport endpoint is not connected \(the daemon is gone): see statehousectl status\)$"
	[ "$(commit_ts_of "$SH_TMP/out")" = 1 ]
}

@test "the README's exit-status line tells a missing key (a default) from a dead mount (a failure)" {
	# The indented line after "statehousectl exits" in README.md.
	line=$(awk '/^statehousectl exits 0/ { on = 1; next } on && /^    / { print substr($0, 5); exit }' \
		"$REPO_ROOT/README.md" | sed 's/ *# .*$//')
	[ "$line" = "plan=\$(statehousectl get agent-1 plan) || { [ \$? -eq 1 ] && plan='{}'; }" ] ||
		fail "the README line changed: $line"
	readme() {
		STATEHOUSE_MOUNT=$MNT
		export STATEHOUSE_MOUNT
		statehousectl() { "$STATEHOUSECTL" "$@"; }
		eval "$line" && echo "$plan"
	}
	sh_mount
	run -0 --separate-stderr readme
	assert_output '{}'
	ctl put agent-1 plan '{"step":2}'
	run -0 --separate-stderr readme
	assert_output '{"step":2}'
	sh_kill9
	run --separate-stderr readme
	assert_failure
	assert_output ''
	assert_equal "$stderr" "statehousectl: cannot read key 'plan' of agent 'agent-1': Transport endpoint is not connected (the daemon is gone: see statehousectl status)"
}
