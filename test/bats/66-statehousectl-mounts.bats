#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# statehousectl's mount commands through real mounts: mount, umount (waiting for the
# daemon, dead mounts), status, fstab (the line, --update-fstab, and mount(8) reading
# it), the choice of mount (-m, $STATEHOUSE_MOUNT, the only one) and bash completion.

bats_require_minimum_version 1.5.0

setup() {
	load helper
	load_libs
	sh_setup_dirs
	unset STATEHOUSE_MOUNT
	SH_PID=
}

teardown() {
	local rc=0
	sh_umount || rc=1
	# daemons that statehousectl mount started run on in the background
	sh_umount_below "$SH_TMP" || rc=1
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# ctl ARGS...: statehousectl with no mount named.
ctl() {
	"$STATEHOUSECTL" "$@"
}

# exited PID: process PID is gone (or a zombie nobody reaped yet).
exited() {
	[ ! -e "/proc/$1" ] || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# in_private_ns KEEP CMD...: run CMD in a private mount namespace in which KEEP is the only
# statehouse mount (none when KEEP is empty); other tests' mounts are untouched outside.
# Mounts stacked at one path are listed once each, so each is detached.
in_private_ns() {
	unshare -m --propagation private bash -c '
		keep=$1
		shift
		awk '\''{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "fuse.statehouse") print $5; break } }'\'' \
			/proc/self/mountinfo | sort -r | while read -r m; do
			[ "$m" = "$keep" ] || umount -l "$m"
		done
		exec "$@"' in_private_ns "$@"
}

# --- mount, umount -------------------------------------------------------------------------

@test "mount starts the daemon beside statehousectl and returns once the mount answers; umount returns after the daemon exited" {
	run -0 env -u STATEHOUSED "$STATEHOUSECTL" mount "$DATA" "$MNT"
	sh_is_mounted "$MNT"
	[ "$(cat "$MNT/.health")" = ok ]
	pid="$(jq .pid "$MNT/.status")"
	[ "$(readlink "/proc/$pid/exe")" = "$(realpath "$STATEHOUSED")" ]
	ctl -m "$MNT" put a k v
	run -0 ctl umount "$MNT"
	assert_output ''
	! sh_is_mounted "$MNT"
	exited "$pid"
	# the data is there after the next mount
	env -u STATEHOUSED "$STATEHOUSECTL" mount "$DATA" "$MNT"
	run -0 ctl -m "$MNT" get a k
	assert_output v
	pid="$(jq .pid "$MNT/.status")"
	run -0 ctl umount "$MNT/"
	exited "$pid"
}

@test "mount runs \$STATEHOUSED when set, with absolute paths and the -o options joined" {
	cat >"$SH_TMP/wrap" <<-EOF
		#!/bin/sh
		echo "\$@" >"$SH_TMP/wrap.args"
		exec "$STATEHOUSED" "\$@"
	EOF
	chmod +x "$SH_TMP/wrap"
	cd "$SH_TMP"
	STATEHOUSED="$SH_TMP/wrap" run -0 ctl mount data mnt -o max_value_bytes=8 -o fsync=0
	cd /
	[ "$(cat "$SH_TMP/wrap.args")" = "$SH_TMP/data $SH_TMP/mnt -o max_value_bytes=8,fsync=0" ]
	run -1 --separate-stderr ctl -m "$MNT" put a k 123456789
	assert_equal "$stderr" "statehousectl: cannot write key 'k' of agent 'a': File too large (the value is over the daemon's max_value_bytes)"
	ctl umount "$MNT"
}

@test "mount fails with exit 1 when the daemon cannot run or refuses, or the mountpoint is already mounted; arguments missing exit 2" {
	STATEHOUSED=/nonexistent/statehoused run -1 --separate-stderr ctl mount "$DATA" "$MNT"
	assert_equal "$stderr" "statehousectl: cannot run '/nonexistent/statehoused' (\$STATEHOUSED): No such file or directory"
	run -1 --separate-stderr ctl mount "$DATA" "$SH_TMP/no-such-dir"
	assert_equal "$stderr" "statehousectl: cannot mount on '$SH_TMP/no-such-dir': No such file or directory"
	touch "$SH_TMP/file"
	run -1 --separate-stderr ctl mount "$DATA" "$SH_TMP/file"
	assert_equal "$stderr" "statehousectl: cannot mount on '$SH_TMP/file': Not a directory"
	ctl mount "$DATA" "$MNT"
	run -1 --separate-stderr ctl mount "$SH_TMP/other" "$MNT"
	assert_equal "$stderr" "statehousectl: cannot mount on '$MNT': it is already the statehouse mount of '$(realpath "$DATA")'"
	run -2 --separate-stderr ctl mount "$DATA"
	assert_equal "${stderr_lines[0]}" "statehousectl: missing MOUNTPOINT"
	run -2 --separate-stderr ctl mount
	assert_equal "${stderr_lines[0]}" "statehousectl: missing DATADIR"
	ctl umount "$MNT"
}

@test "umount warns on stderr how many open transactions it loses" {
	sh_mount
	ctl -m "$MNT" txn begin t1
	ctl -m "$MNT" txn begin t2
	run -0 --separate-stderr ctl umount "$MNT"
	assert_equal "$stderr" "statehousectl: warning: unmounting '$MNT' loses 2 open transactions"
	exited "$SH_PID"
	! sh_is_mounted "$MNT"
}

@test "umount refuses a path that is not a statehouse mount (exit 3) and needs a mountpoint (exit 2)" {
	run -3 --separate-stderr ctl umount "$SH_TMP"
	assert_equal "$stderr" "statehousectl: '$SH_TMP' is not a statehouse mount"
	run -3 --separate-stderr ctl umount /proc
	assert_equal "$stderr" "statehousectl: '/proc' is not a statehouse mount"
	run -2 --separate-stderr ctl umount
	assert_equal "${stderr_lines[0]}" "statehousectl: missing MOUNTPOINT"
}

@test "a mount whose daemon was SIGKILLed is dead: status says so with the fix (exit 3), commands name ENOTCONN, umount detaches it" {
	sh_mount
	sh_kill9
	run -3 ctl status "$MNT"
	assert_line -n 0 "$MNT: dead (Transport endpoint is not connected)"
	assert_line "  data dir        $(realpath "$DATA")"
	assert_line "  fix             restart the daemon: statehousectl mount $(realpath "$DATA") $MNT"
	assert_line "  or              detach the dead mount: statehousectl umount $MNT  (or: fusermount3 -u -z $MNT)"
	run -3 ctl --json status "$MNT"
	jq -e --arg m "$MNT" '.[0].state == "dead" and .[0].mountpoint == $m and
		.[0].detach == "statehousectl umount \($m)  (or: fusermount3 -u -z \($m))"' <<<"$output"
	run -3 --separate-stderr ctl -m "$MNT" get a k
	assert_equal "$stderr" "statehousectl: cannot read key 'k' of agent 'a': Transport endpoint is not connected (the daemon is gone: see statehousectl status)"
	run -0 --separate-stderr ctl umount "$MNT"
	assert_equal "$stderr" "statehousectl: '$MNT' was a dead mount (its daemon is gone); detached it"
	[ "$(sh_mount_count "$MNT")" -eq 0 ]
}

# --- status ---------------------------------------------------------------------------------

@test "status shows the data dir, daemon pid, health, head commit_ts, open transactions, restarts and last recovery" {
	sh_mount
	ctl -m "$MNT" put a k v
	sh_restart
	ctl -m "$MNT" put a k w
	ctl -m "$MNT" txn begin t
	run -0 ctl status "$MNT"
	assert_line -n 0 "$MNT: live"
	assert_line "  data dir        $(realpath "$DATA")"
	assert_line "  daemon pid      $SH_PID"
	assert_line "  serving pid     $(jq .pid "$MNT/.status") (0 restarts of it)"
	assert_line "  health          ok"
	assert_line "  head commit_ts  2"
	assert_line "  open txns       1"
	assert_line "  restarts        1 (1 after a crash)"
	assert_line -e '^  last recovery   [0-9]+ ms, 1 events replayed$'
	assert_line "  last snapshot   none"
	assert_line -e '^  started         [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+Z \(up [0-9]+ s\)$'
	run -0 ctl --json status "$MNT"
	jq -e --arg m "$MNT" --argjson pid "$SH_PID" '.[0].state == "live" and .[0].mountpoint == $m and
		.[0].status.supervisor_pid == $pid and .[0].status.pid != $pid and
		.[0].status.head_commit_ts == 2 and .[0].status.health == "ok"' <<<"$output"
	run -3 --separate-stderr ctl status "$SH_TMP"
	assert_equal "$stderr" "statehousectl: '$SH_TMP' is not a statehouse mount"
	# a clean stop writes a snapshot at the head
	ctl -m "$MNT" txn abort t
	sh_remount
	run -0 ctl status "$MNT"
	assert_line "  last snapshot   commit_ts 2"
	assert_line "  restarts        2 (1 after a crash)"
}

@test "with several statehouse mounts and none named a command lists them and exits 2; -m wins over \$STATEHOUSE_MOUNT" {
	sh_mount
	MNT2="$SH_TMP/mnt2"
	mkdir "$MNT2"
	ctl mount "$SH_TMP/data2" "$MNT2"
	ctl -m "$MNT" put a k one
	ctl --mount "$MNT2" put a k two
	run -2 --separate-stderr ctl get a k
	assert_output ''
	[[ "${stderr_lines[0]}" =~ ^statehousectl:\ [0-9]+\ statehouse\ mounts\;\ choose\ one\ with\ -m\ MOUNTPOINT\ or\ \$STATEHOUSE_MOUNT:$ ]]
	[[ "$stderr" == *$'\n'"  $MNT (data dir $(realpath "$DATA"))"* ]]
	[[ "$stderr" == *$'\n'"  $MNT2 (data dir $SH_TMP/data2)"* ]]
	STATEHOUSE_MOUNT="$MNT2" run -0 ctl get a k
	assert_output two
	STATEHOUSE_MOUNT="$MNT2" run -0 ctl -m "$MNT" get a k
	assert_output one
	STATEHOUSE_MOUNT="$SH_TMP" run -3 --separate-stderr ctl get a k
	assert_equal "$stderr" "statehousectl: '$SH_TMP' is not a statehouse mount (\$STATEHOUSE_MOUNT)"
	run -3 --separate-stderr ctl -m "$SH_TMP/nowhere" get a k
	assert_equal "$stderr" "statehousectl: '$SH_TMP/nowhere' is not a statehouse mount: the path does not exist"
	# status lists both (and whatever else is mounted on this machine)
	run ctl status
	assert_line "$MNT: live"
	assert_line "$MNT2: live"
	ctl umount "$MNT2"
}

@test "the only statehouse mount is used when none is named; with none, a command says so (exit 3)" {
	sh_mount
	ctl -m "$MNT" put a k v
	run -0 in_private_ns "$MNT" "$STATEHOUSECTL" get a k
	assert_output v
	run -3 --separate-stderr in_private_ns "" "$STATEHOUSECTL" get a k
	assert_equal "$stderr" "statehousectl: no statehouse mount: mount one with 'statehousectl mount DATADIR MOUNTPOINT' or name one with -m"
	run -0 in_private_ns "" "$STATEHOUSECTL" status
	assert_output 'no statehouse mounts'
	run -0 in_private_ns "" "$STATEHOUSECTL" --json status
	assert_output '[]'
}

# --- fstab ----------------------------------------------------------------------------------

@test "fstab prints one line: absolute paths, fuse.statehouse, defaults,nofail plus the options, spaces as \\040" {
	cd "$SH_TMP"
	mkdir 'my data'
	run -0 ctl fstab 'my data' 'my mnt/' -o fsync=0 -o log_level=warn
	cd /
	assert_output "$SH_TMP/my\\040data  $SH_TMP/my\\040mnt  fuse.statehouse  defaults,nofail,fsync=0,log_level=warn  0  0"
	# libmount reads the fields back as they were meant
	echo "$output" >"$SH_TMP/fstab"
	run -0 findmnt -F "$SH_TMP/fstab" -J -o SOURCE,TARGET,FSTYPE,OPTIONS
	jq -e --arg t "$SH_TMP" '.filesystems[0] | .source == "\($t)/my data" and
		.target == "\($t)/my mnt" and .fstype == "fuse.statehouse" and
		.options == "defaults,nofail,fsync=0,log_level=warn"' <<<"$output"
	run -2 --separate-stderr ctl fstab "$DATA"
	assert_equal "${stderr_lines[0]}" "statehousectl: missing MOUNTPOINT"
	run -2 --separate-stderr ctl fstab "$DATA" "$MNT" extra
	assert_equal "${stderr_lines[0]}" "statehousectl: too many arguments"
}

@test "fstab --fstab FILE adds the line atomically, keeping content and mode; a duplicate mountpoint and a held lock are refused" {
	F="$SH_TMP/fstab"
	printf '# static file system information\nUUID=x / ext4 defaults 0 1\n/dev/sdb1\t/srv/data/  ext4 defaults 0 2' >"$F"
	cp "$F" "$SH_TMP/before"
	chmod 640 "$F"
	ino="$(stat -c %i "$F")"
	data="$(realpath -m "$DATA")"
	line="$data  $MNT  fuse.statehouse  defaults,nofail  0  0"
	run -0 ctl fstab "$DATA" "$MNT" --fstab "$F"
	assert_output "$line"
	[ "$(cat "$F")" = "$(cat "$SH_TMP/before")"$'\n'"$line" ]
	[ "$(stat -c %i "$F")" != "$ino" ]
	[ "$(stat -c %a "$F")" = 640 ]
	[ "$(ls "$SH_TMP" | grep -c '^fstab')" -eq 1 ]
	cp "$F" "$SH_TMP/after"
	run -1 --separate-stderr ctl fstab "$SH_TMP/other" "$MNT/" --fstab "$F"
	assert_equal "$stderr" "statehousectl: cannot add to '$F': line 4 already mounts '$MNT'"
	assert_output ''
	run -1 --separate-stderr ctl fstab "$SH_TMP/other" /srv/data --fstab "$F"
	assert_equal "$stderr" "statehousectl: cannot add to '$F': line 3 already mounts '/srv/data'"
	cmp "$F" "$SH_TMP/after"
	touch "$F.lock"
	run -1 --separate-stderr ctl fstab "$SH_TMP/d2" "$SH_TMP/m2" --fstab "$F"
	assert_equal "$stderr" "statehousectl: cannot lock '$F': '$F.lock' exists (another program is editing it, or one was interrupted: remove the lock file if none is running)"
	cmp "$F" "$SH_TMP/after"
	rm "$F.lock"
	# a file that does not exist yet is made
	run -0 ctl fstab /d /m --fstab "$SH_TMP/new"
	[ "$(cat "$SH_TMP/new")" = "/d  /m  fuse.statehouse  defaults,nofail  0  0" ]
}

@test "fstab --update-fstab adds the line to /etc/fstab (a private /etc here)" {
	mkdir "$SH_TMP/etc"
	printf 'UUID=x / ext4 defaults 0 1\n' >"$SH_TMP/etc/fstab"
	cp -a /etc/ld.so.cache "$SH_TMP/etc/" 2>/dev/null || true
	run -0 unshare -m --propagation private sh -c \
		'mount --bind "$1/etc" /etc && exec "$2" fstab /srv/d /srv/m --update-fstab' - "$SH_TMP" "$STATEHOUSECTL"
	assert_output "/srv/d  /srv/m  fuse.statehouse  defaults,nofail  0  0"
	[ "$(cat "$SH_TMP/etc/fstab")" = "$(printf 'UUID=x / ext4 defaults 0 1\n%s' "$output")" ]
	[ ! -e "$SH_TMP/etc/fstab.lock" ]
}

@test "the fstab line mounts with mount(8), whose mount.fuse3 runs the program 'statehouse'" {
	[ -d /usr/local/sbin ] || sh_skip "no /usr/local/sbin to put 'statehouse' in"
	mkdir "$SH_TMP/sbin"
	ln -s "$STATEHOUSED" "$SH_TMP/sbin/statehouse"
	ctl fstab "$DATA" "$MNT" -o fsync=0 >"$SH_TMP/fstab"
	# In a private namespace: the daemon mount.fuse3 starts lives in it, and so does its
	# mount; statehousectl umount waits for that daemon to exit before the namespace goes.
	run -0 --separate-stderr unshare -m --propagation private bash -c '
		mount --bind "$1/sbin" /usr/local/sbin || exit 3
		mount -T "$1/fstab" "$2" || exit 4
		trap "umount -l \"\$2\" 2>/dev/null" EXIT
		cat "$2/.health"
		"$3" -m "$2" put a k from-fstab
		"$3" -m "$2" get a k
		echo
		"$3" umount "$2"' - "$SH_TMP" "$MNT" "$STATEHOUSECTL"
	assert_output "$(printf 'ok\nfrom-fstab')"
	# the data dir holds the commit: mount it here and read it
	sh_mount
	run -0 ctl -m "$MNT" get a k
	assert_output from-fstab
}

# --- bash completion -----------------------------------------------------------------------

# complete_words WORD...: what the completion offers for the last WORD, sorted, on one line.
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_statehousectl
	printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | paste -sd' '
}

@test "bash completion offers commands, txn subcommands, options, mountpoints, agents, keys and open transactions" {
	sh_mount
	ctl -m "$MNT" put agent-1 step/001 x
	ctl -m "$MNT" put agent-1 step/002 x
	ctl -m "$MNT" put agent-2 k y
	ctl -m "$MNT" txn begin open-1
	# shellcheck source=../../contrib/bash-completion/statehousectl
	source "$REPO_ROOT/contrib/bash-completion/statehousectl"
	PATH="$(dirname "$STATEHOUSECTL"):$PATH"
	[ "$(complete_words statehousectl ta)" = tail ]
	[ "$(complete_words statehousectl bac)" = backup ]
	[ "$(complete_words statehousectl txn '')" = "abort begin commit" ]
	[ "$(complete_words statehousectl help txn c)" = commit ]
	[ "$(complete_words statehousectl -m "$MNT" get '')" = "agent-1 agent-2" ]
	[ "$(complete_words statehousectl -m "$MNT" get agent-1 step/00)" = "step/001 step/002" ]
	[ "$(complete_words statehousectl --ns default -m "$MNT" rm agent-2 '')" = k ]
	[ "$(complete_words statehousectl -m "$MNT" txn commit '')" = open-1 ]
	[ "$(complete_words statehousectl -m "$MNT" replay agent-1 --s)" = --since ]
	[ "$(complete_words statehousectl -m "$MNT" tail agent-1 -)" = "--help --json --mount --no-wait --ns --prefix -f -h -m -n" ]
	[ "$(complete_words statehousectl -m "$MNT" put agent-1 k v --if)" = "--if-absent --if-version" ]
	[ "$(complete_words statehousectl -m "$MNT" rm agent-1 k --if)" = "--if-version" ]
	[[ " $(complete_words statehousectl -m '') " == *" $MNT "* ]]
	[[ " $(complete_words statehousectl umount '') " == *" $MNT "* ]]
	STATEHOUSE_MOUNT="$MNT" run complete_words statehousectl --ns ''
	assert_output default
}
