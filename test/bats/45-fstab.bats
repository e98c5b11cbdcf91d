#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# statehoused operated like any file system: fstab lines of type fuse.statehouse and
# statehouse through mount(8), mount options, ordinary users through fusermount3, signals
# and logging. System paths (/etc/fstab, /srv, /sbin, /dev) change only inside a private
# mount namespace per test, so the host stays as it was and the daemon run is the one tested.

load helper

# The README's fstab line and commands (README.md, "Operating it"), run as written, less sudo.
README_FSTAB='/var/lib/statehouse/main /srv/state fuse.statehouse defaults,nofail,noatime 0 0'
USER_UID=65534 # nobody: fusermount3 needs a user with a name
OTHER_UID=4242

setup() {
	load_libs
	sh_setup_dirs
	SH_PID=
	NS_PID=
	LISTENER=
	DATA_REAL="$(realpath -m "$DATA")"
}

teardown() {
	local rc=0
	ns_stop || rc=1
	if [ -n "$LISTENER" ]; then kill "$LISTENER" 2>/dev/null; wait "$LISTENER" 2>/dev/null; fi
	sh_umount_below "$SH_TMP" || rc=1
	sh_default_teardown || rc=1
	return $rc
}

# ---- helpers ---------------------------------------------------------------------------

# readme_shows CMD: README.md shows CMD as an indented command line (a comment may follow).
readme_shows() {
	sed -n 's/^    //p' "$REPO_ROOT/README.md" | sed 's/[[:space:]][[:space:]]*#.*$//' |
		grep -qxF -- "$1" || fail "README.md does not show the command: $1"
}

# ns_start: a private mount namespace held by a sleeping process; in_ns runs a command in it.
# The copies of FUSE mounts it starts with are detached: a copy would keep their daemons
# running after they are unmounted outside.
ns_start() {
	unshare --mount --propagation private sleep 3600 </dev/null >/dev/null 2>&1 3>&- &
	NS_PID=$!
	sh_wait_until 10 ns_ready
	in_ns sh -c 'awk '\''{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) ~ /^fuse/) print $5; break } }'\'' \
		/proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done; true'
}

ns_ready() {
	[ "$(readlink "/proc/$NS_PID/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]
}

in_ns() {
	nsenter -t "$NS_PID" -m -- "$@"
}

# ns_as UID CMD...: CMD in the namespace as an ordinary user (no groups, no capabilities).
ns_as() {
	local uid=$1
	shift
	in_ns setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"
}

# errno_as UID OP PATH [ARG]: errno.py in the namespace as UID (0: root).
errno_as() {
	local uid=$1
	shift
	if [ "$uid" = 0 ]; then
		in_ns "$SH_PYTHON" "$REPO_ROOT/test/bats/errno.py" "$@"
	else
		ns_as "$uid" "$SH_PYTHON" "$REPO_ROOT/test/bats/errno.py" "$@"
	fi
}

# ns_stop: unmount the statehouse mounts made below /srv in the namespace, wait (20 s) for
# every process in it but the holder to exit (their daemons stop cleanly), then end the
# holder and whatever did not exit; the namespace goes with the last process in it.
ns_stop() {
	local rc=0 m
	[ -n "${NS_PID:-}" ] || return 0
	for m in $(awk '$5 ~ "^/srv/" && / - fuse\.statehouse / { print $5 }' "/proc/$NS_PID/mountinfo" | sort -r); do
		in_ns umount "$m" 2>/dev/null || in_ns umount -l "$m" 2>/dev/null || rc=1
	done
	# One process scans /proc: forks are what a loaded machine makes slow.
	"$SH_PYTHON" -c '
import os, signal, sys, time
holder = sys.argv[1]
ns = os.readlink("/proc/%s/ns/mnt" % holder)
def others():
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit() and p != holder:
            try:
                if os.readlink("/proc/%s/ns/mnt" % p) == ns:
                    found.append(int(p))
            except OSError:
                pass
    return found
deadline = time.monotonic() + 20
while others() and time.monotonic() < deadline:
    time.sleep(0.05)
left = others()
for p in left:
    os.kill(p, signal.SIGKILL)
    print("killed pid %d: still in the namespace after 20 s" % p, file=sys.stderr)
sys.exit(1 if left else 0)' "$NS_PID" || rc=1
	kill -9 "$NS_PID" 2>/dev/null
	wait "$NS_PID" 2>/dev/null # the holder is our child: reaped here, not left a zombie
	NS_PID=
	return $rc
}

# ns_fstab: a namespace in which /etc/fstab is $SH_TMP/fstab, /srv, /var/lib and /run/mount
# (libmount's utab) are empty tmpfs, and the daemon under test is /usr/local/sbin/statehouse
# (what mount.fuse3 runs for fuse.statehouse) and /sbin/mount.statehouse (what mount(8)
# runs for statehouse), each an overlay that keeps the real directory's content.
ns_fstab() {
	local sbin
	sbin=$(readlink -f /sbin)
	mkdir -p "$SH_TMP/sbin" "$SH_TMP/lsbin"
	ln -s "$STATEHOUSED" "$SH_TMP/sbin/mount.statehouse"
	ln -s "$STATEHOUSED" "$SH_TMP/lsbin/statehouse"
	printf '# fstab of one test\n' >"$SH_TMP/fstab"
	ns_start
	in_ns sh -ec "
		mount -t overlay overlay -o lowerdir=$SH_TMP/sbin:$sbin $sbin
		mount -t overlay overlay -o lowerdir=$SH_TMP/lsbin:/usr/local/sbin /usr/local/sbin
		mount --bind $SH_TMP/fstab /etc/fstab
		for d in /srv /var/lib /run/mount; do mount -t tmpfs -o mode=0755 tmpfs \$d; done"
}

# ns_user FUSECONF: a namespace in which /dev/fuse is open to everyone (as the fuse3
# package's udev rule makes it; this machine may not run udev), /etc/fuse.conf holds
# FUSECONF, and /srv/u and /srv/u/mnt belong to USER_UID.  MODE and GROUP make /dev/fuse
# another mode (0666) and group (root).
ns_user() {
	printf '%s\n' "$1" >"$SH_TMP/fuse.conf"
	mkdir "$SH_TMP/dev"
	ns_start
	in_ns sh -ec "
		mount -t tmpfs -o mode=0755,size=1m tmpfs $SH_TMP/dev
		mknod -m ${2:-0666} $SH_TMP/dev/fuse c 10 229
		chgrp ${3:-root} $SH_TMP/dev/fuse
		mount --bind $SH_TMP/dev/fuse /dev/fuse
		mount --bind $SH_TMP/fuse.conf /etc/fuse.conf
		mount -t tmpfs -o mode=0755 tmpfs /srv
		mkdir -p /srv/u/mnt
		chown -R $USER_UID:$USER_UID /srv/u"
}

# status_of MNT FILTER: jq -r FILTER of MNT/.status, read in the namespace.
status_of() {
	in_ns jq -r "$2" "$1/.status"
}

# ---- fstab --------------------------------------------------------------------------------

@test "the README's fstab line mounts through mount.fuse3 with the data dir as source, serves, and umount stops the daemon cleanly" {
	readme_shows "sudo mkdir -p /srv/state"
	readme_shows "echo '$README_FSTAB' | sudo tee -a /etc/fstab"
	readme_shows "sudo mount /srv/state"
	readme_shows "sudo umount /srv/state"
	ns_fstab
	in_ns mkdir -p /srv/state
	in_ns sh -c "echo '$README_FSTAB' | tee -a /etc/fstab" >/dev/null
	run in_ns mount /srv/state
	assert_success
	# The daemon's messages up to the live mount reach mount(8)'s caller.
	assert_line "statehoused: serving '/var/lib/statehouse/main' at '/srv/state'"

	run in_ns findmnt -n -t fuse.statehouse -o SOURCE,FSTYPE /srv/state
	assert_output "/var/lib/statehouse/main fuse.statehouse"
	run in_ns findmnt -n -o OPTIONS /srv/state
	assert_output --regexp '(^|,)noatime(,|$)'
	assert_output --regexp '(^|,)default_permissions(,|$)'
	run in_ns df --output=source /srv/state
	assert_line --index 1 /var/lib/statehouse/main
	in_ns sh -c 'echo kept >/srv/state/default/agent-1/k'
	run in_ns cat /srv/state/default/agent-1/k
	assert_output kept
	[ "$(status_of /srv/state .starts)" = 1 ]
	pid=$(status_of /srv/state .pid)

	in_ns umount /srv/state
	sh_wait_exit "$pid"
	run in_ns findmnt /srv/state
	assert_failure
	run in_ns stat -c %F /srv/state # no dead mount answering ENOTCONN
	assert_output directory

	# The stop was clean: the next start counts no unclean one and has the key.
	in_ns mount /srv/state 2>/dev/null
	[ "$(status_of /srv/state '[.starts, .unclean_starts] | @csv')" = 2,0 ]
	run in_ns cat /srv/state/default/agent-1/k
	assert_output kept
}

@test "an fstab line of type statehouse mounts through /sbin/mount.statehouse, x- and generic options dropped" {
	ns_fstab
	echo '/var/lib/statehouse/two /srv/two statehouse defaults,nofail,noatime,x-test=1 0 0' >>"$SH_TMP/fstab"
	in_ns mkdir /srv/two
	run in_ns mount /srv/two
	assert_success
	assert_line "statehoused: serving '/var/lib/statehouse/two' at '/srv/two'"
	run in_ns findmnt -n -o SOURCE,FSTYPE /srv/two
	assert_output "/var/lib/statehouse/two fuse.statehouse"
	run in_ns findmnt -n -o OPTIONS /srv/two
	assert_output --regexp '(^|,)noatime(,|$)'
	in_ns sh -c 'echo two >/srv/two/default/agent-1/k'
	run in_ns cat /srv/two/default/agent-1/k
	assert_output two
	pid=$(status_of /srv/two .pid)
	in_ns umount /srv/two
	sh_wait_exit "$pid"
	run in_ns stat -c %F /srv/two
	assert_output directory
}

@test "the README's read-heavy setup mounts the live tree read-only beside the main mount, fresh after each commit, and umount takes both down" {
	readme_shows "sudo mkdir -p /srv/state /srv/state-ro"
	readme_shows "sudo statehoused /var/lib/statehouse/main /srv/state -o ro_mount=/srv/state-ro"
	readme_shows "cat /srv/state-ro/default/agent-1/k"
	ns_fstab
	in_ns mkdir -p /srv/state /srv/state-ro
	run in_ns "$STATEHOUSED" /var/lib/statehouse/main /srv/state -o ro_mount=/srv/state-ro
	assert_success
	assert_line "statehoused: serving the live tree read-only at '/srv/state-ro'"
	run in_ns findmnt -n -o SOURCE,FSTYPE /srv/state-ro
	assert_output "/var/lib/statehouse/main fuse.statehouse-ro"
	for v in one two; do
		in_ns sh -c "echo $v >/srv/state/default/agent-1/k"
		run in_ns cat /srv/state-ro/default/agent-1/k
		assert_output "$v"
	done
	run in_ns sh -c 'echo x >/srv/state-ro/default/agent-1/k'
	assert_failure
	assert_output --partial "Read-only file system"
	[ "$(status_of /srv/state .ro_mount)" = /srv/state-ro ]
	pid=$(status_of /srv/state .pid)
	in_ns umount /srv/state
	sh_wait_exit "$pid"
	run in_ns findmnt /srv/state-ro
	assert_failure
}

@test "ro_mount works from an fstab line: mount(8) mounts both, umount stops both" {
	ns_fstab
	echo '/var/lib/statehouse/main /srv/state fuse.statehouse defaults,nofail,ro_mount=/srv/state-ro 0 0' >>"$SH_TMP/fstab"
	in_ns mkdir -p /srv/state /srv/state-ro
	run in_ns mount /srv/state
	assert_success
	in_ns sh -c 'echo v >/srv/state/default/agent-1/k'
	run in_ns cat /srv/state-ro/default/agent-1/k
	assert_output v
	run in_ns findmnt -n -o OPTIONS /srv/state-ro
	assert_output --regexp '^ro,'
	pid=$(status_of /srv/state .pid)
	in_ns umount /srv/state
	sh_wait_exit "$pid"
	run in_ns findmnt /srv/state-ro
	assert_failure
	run in_ns stat -c %F /srv/state-ro
	assert_output directory
}

@test "an fstab line with an unknown option fails in mount(8) with the daemon's message, and creates and mounts nothing" {
	ns_fstab
	cat >>"$SH_TMP/fstab" <<-'EOF'
		/var/lib/statehouse/bad /srv/bad fuse.statehouse defaults,bogus_opt 0 0
		/var/lib/statehouse/bad2 /srv/bad2 statehouse defaults,bogus_opt 0 0
	EOF
	in_ns mkdir /srv/bad /srv/bad2
	for m in /srv/bad /srv/bad2; do
		run in_ns mount "$m"
		assert_failure 2
		assert_output "$(printf '%s\n' "statehoused: error: fuse: unknown option(s): \`-o bogus_opt'" \
			"statehoused: cannot mount: bad mount option (see above); 'statehoused --help' lists the options")"
		run in_ns findmnt "$m"
		assert_failure
	done
	run in_ns ls -A /var/lib
	assert_output ""
}

# ---- mount options on the command line ----------------------------------------------------

@test "ro mounts read-only: every change fails with EROFS, reads work, and .status says read_only" {
	sh_mount
	echo v >"$MNT/default/a/k"
	[ "$(jq .read_only "$MNT/.status")" = false ]
	sh_remount -o ro
	run findmnt -n -o OPTIONS "$MNT"
	assert_output --regexp '^ro,'
	[ "$(jq .read_only "$MNT/.status")" = true ]
	run cat "$MNT/default/a/k"
	assert_output v
	for c in "write $MNT/default/a/k x" "write $MNT/default/a/new x" "unlink $MNT/default/a/k" \
		"mkdir $MNT/.tx/t" "rename $MNT/default/a/k $MNT/default/a/k2" "chmod $MNT/default/a 0700"; do
		run sh_errno $c
		[ "$output" = EROFS ] || fail "$c: $output, not EROFS"
	done
	run cat "$MNT/default/a/k"
	assert_output v
}

@test "an unknown option is refused before the data dir is touched: a message, exit 2, no mount and no start" {
	sh_mount
	[ "$(jq .starts "$MNT/.status")" = 1 ]
	sh_umount
	before=$(find "$DATA" -printf '%p %s %T@\n' | sort)
	run "$STATEHOUSED" "$DATA" "$MNT" -o noatime,bogus_opt
	assert_failure 2
	assert_output "$(printf '%s\n' "statehoused: error: fuse: unknown option(s): \`-o bogus_opt'" \
		"statehoused: cannot mount: bad mount option (see above); 'statehoused --help' lists the options")"
	refute sh_is_mounted "$MNT"
	[ "$(find "$DATA" -printf '%p %s %T@\n' | sort)" = "$before" ]
	run "$STATEHOUSED" "$SH_TMP/new" "$MNT" -o bogus_opt
	assert_failure 2
	[ ! -e "$SH_TMP/new" ]
	sh_mount
	[ "$(jq .starts "$MNT/.status")" = 2 ]
}

@test "mount(8)'s generic options are accepted on the daemon's own command line and dropped" {
	sh_mount -o defaults,auto,nofail,_netdev,relatime,user,owner,x-systemd.automount,X-mount.mkdir,comment=x,noatime
	run findmnt -n -o OPTIONS "$MNT"
	assert_output --regexp '(^|,)noatime(,|$)'
	echo v >"$MNT/default/a/k"
	run cat "$MNT/default/a/k"
	assert_output v
}

@test "findmnt and df show the data dir, commas and all, as the source and fuse.statehouse as the type" {
	DATA="$SH_TMP/data,v1"
	sh_mount
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$(realpath "$DATA") fuse.statehouse"
	run df --output=source "$MNT"
	assert_line --index 1 "$(realpath "$DATA")"
	[ "$(jq -r .datadir "$MNT/.status")" = "$(realpath "$DATA")" ]
}

@test "called as mount.statehouse the daemon takes mount(8)'s helper arguments, ignoring -sfnv and -t" {
	ln -s "$STATEHOUSED" "$SH_TMP/mount.statehouse"
	# -f is mount(8)'s "fake": were it the daemon's foreground flag, this would not return.
	run "$SH_TMP/mount.statehouse" "$DATA" "$MNT" -sfnv -o noatime,nofail -t statehouse
	assert_success
	sh_is_mounted "$MNT"
	run findmnt -n -o SOURCE,FSTYPE "$MNT"
	assert_output "$DATA_REAL fuse.statehouse"
	pid=$(jq .pid "$MNT/.status")
	umount "$MNT"
	sh_wait_exit "$pid"

	run "$SH_TMP/mount.statehouse" "$DATA" "$MNT" -N 1
	assert_failure 2
	assert_output "statehoused: mounting in another mount namespace (-N) is not supported"
	run "$SH_TMP/mount.statehouse" "$DATA" "$MNT" -x
	assert_failure 2
	assert_output "statehoused: unknown mount helper option '-x'"
	run "$SH_TMP/mount.statehouse" "$DATA" "$MNT" extra
	assert_failure 2
	assert_output "statehoused: unexpected argument 'extra'"
	run "$SH_TMP/mount.statehouse" "$DATA" "$MNT" -o
	assert_failure 2
	assert_output "statehoused: option '-o' needs a value"
	refute sh_is_mounted "$MNT"
}

# ---- ordinary users -----------------------------------------------------------------------

@test "allow_other as an ordinary user without user_allow_other in /etc/fuse.conf fails saying so, and creates nothing" {
	ns_user '#user_allow_other'
	run ns_as "$USER_UID" "$STATEHOUSED" /srv/u/data /srv/u/mnt -o allow_other
	assert_failure 1
	assert_output "statehoused: cannot mount with allow_other as a user: add 'user_allow_other' to /etc/fuse.conf (or mount as root)"
	run in_ns findmnt /srv/u/mnt
	assert_failure
	run in_ns test -e /srv/u/data
	assert_failure
}

@test "a user who may not open /dev/fuse is told its mode and group and what lets the user in, and the start makes nothing" {
	grep -q '^disk:' /etc/group || sh_skip "no group 'disk' in /etc/group"
	ns_user '' 0660 disk
	run ns_as "$USER_UID" "$STATEHOUSED" /srv/u/data /srv/u/mnt -f
	assert_failure 1
	assert_output "statehoused: error: cannot open /dev/fuse: Permission denied (mode 0660, owner root, group disk): add user 'nobody' to group 'disk' (as root: usermod -aG disk nobody, then log in again), or have root mount it with -o allow_other, which lets other users in"
	run in_ns test -e /srv/u/data
	assert_failure
	# open to root alone: the mode is what to change
	in_ns chmod 0600 "$SH_TMP/dev/fuse"
	run ns_as "$USER_UID" "$STATEHOUSED" /srv/u/data /srv/u/mnt
	assert_failure 1
	assert_output "statehoused: error: cannot open /dev/fuse: Permission denied (mode 0600, owner root, group disk): as root, give it the mode the fuse3 package's udev rule gives it (chmod 0666 /dev/fuse), or have root mount it with -o allow_other, which lets other users in"
	run in_ns test -e /srv/u/data
	assert_failure
}

@test "without /dev/fuse the start says to load the module or pass the device into the container, and makes nothing" {
	ns_start
	in_ns mount -t tmpfs -o mode=0755,size=1m tmpfs /dev
	run in_ns "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args)
	assert_failure 1
	assert_output "statehoused: error: cannot open /dev/fuse: No such file or directory: load the FUSE module as root ('modprobe fuse'); in a container, pass the device in (docker run --device /dev/fuse --cap-add SYS_ADMIN)"
	[ ! -e "$DATA" ]
	refute sh_is_mounted "$MNT"
}

@test "works as an ordinary user through the setuid fusermount3: its own data dir, a mount only it may use, fusermount3 -u stops it" {
	ns_user ''
	run ns_as "$USER_UID" "$STATEHOUSED" /srv/u/data /srv/u/mnt $(sh_mode_args)
	assert_success
	run in_ns findmnt -n -o SOURCE,OPTIONS /srv/u/mnt
	assert_output --regexp "^/srv/u/data .*user_id=$USER_UID,group_id=$USER_UID"
	ns_as "$USER_UID" sh -c 'echo mine >/srv/u/mnt/default/a/k'
	run ns_as "$USER_UID" cat /srv/u/mnt/default/a/k
	assert_output mine
	run ns_as "$USER_UID" stat -c '%u %a' /srv/u/mnt/default/a/k
	assert_output "$USER_UID 644"
	# Without allow_other, not even root may use another user's mount.
	run errno_as 0 read /srv/u/mnt/default/a/k
	assert_output EACCES
	pid=$(ns_as "$USER_UID" jq .pid /srv/u/mnt/.status)
	run ns_as "$USER_UID" fusermount3 -u /srv/u/mnt
	assert_success
	sh_wait_exit "$pid"
	run in_ns findmnt /srv/u/mnt
	assert_failure
	[ "$(in_ns stat -c %u /srv/u/data/statehouse.db)" = "$USER_UID" ]
}

@test "with user_allow_other a user's allow_other mount lets others in as the modes say: they read, and get EACCES where root gets EROFS" {
	ns_user 'user_allow_other'
	ns_as "$USER_UID" "$STATEHOUSED" /srv/u/data /srv/u/mnt -o allow_other $(sh_mode_args) 2>/dev/null
	ns_as "$USER_UID" sh -c 'echo shared >/srv/u/mnt/default/a/k'
	run errno_as "$OTHER_UID" read /srv/u/mnt/default/a/k
	assert_output OK
	run errno_as "$OTHER_UID" write /srv/u/mnt/default/a/k x
	assert_output EACCES
	run errno_as "$OTHER_UID" write /srv/u/mnt/.at/1/default/a/k x
	assert_output EACCES
	run errno_as "$USER_UID" write /srv/u/mnt/.at/1/default/a/k x
	assert_output EACCES # the owner too: the files there are 0444
	run errno_as 0 write /srv/u/mnt/.at/1/default/a/k x
	assert_output EROFS # root passes the kernel's check and gets the daemon's answer
	run ns_as "$USER_UID" cat /srv/u/mnt/default/a/k
	assert_output shared
}

# ---- signals ------------------------------------------------------------------------------

@test "SIGTERM and SIGINT each unmount and stop the daemon cleanly (exit 0), and no start after them is unclean" {
	local sig n=0
	for sig in TERM INT; do
		# Started with SIGINT at its default: bats' background jobs ignore it, and libfuse
		# leaves an ignored signal ignored.
		env --default-signal=INT "$STATEHOUSED" "$DATA" "$MNT" -f $(sh_mode_args) >>"$LOG" 2>&1 3>&- &
		SH_PID=$!
		sh_wait_mounted "$MNT" "$SH_PID"
		n=$((n + 1))
		echo "$sig" >"$MNT/default/a/$sig"
		kill -s "$sig" "$SH_PID"
		rc=0
		wait "$SH_PID" || rc=$?
		SH_PID=
		[ "$rc" -eq 0 ] || fail "the daemon exited $rc after SIG$sig"
		refute sh_is_mounted "$MNT"
		[ "$(stat -c %F "$MNT")" = directory ]
		[ "$(grep -c "^statehoused: unmounted '$MNT'; stopping$" "$LOG")" -eq "$n" ]
	done
	sh_mount
	[ "$(jq -c '[.starts, .unclean_starts]' "$MNT/.status")" = '[3,0]' ]
	run cat "$MNT/default/a/TERM" "$MNT/default/a/INT"
	assert_output "$(printf 'TERM\nINT')"
	refute grep -q 'did not stop cleanly' "$LOG"
}

# ---- logging ------------------------------------------------------------------------------

@test "in the foreground messages go to stderr: -d adds libfuse's request trace as debug lines, log_level=info given with it drops them" {
	sh_mount -d
	cat "$MNT/.health" >/dev/null
	sh_umount
	grep -q "^statehoused: serving '$DATA_REAL' at '$MNT'$" "$LOG"
	grep -qE '^statehoused: debug: unique: [0-9]+, opcode: INIT ' "$LOG" || fail "no libfuse trace in: $(cat "$LOG")"
	: >"$LOG"
	sh_mount -d -o log_level=info
	cat "$MNT/.health" >/dev/null
	sh_umount
	grep -q "^statehoused: serving '$DATA_REAL' at '$MNT'$" "$LOG"
	refute grep -q 'debug:' "$LOG"
}

@test "log_level=warn keeps warnings and drops the info lines" {
	sh_mount -o log_level=warn
	echo v >"$MNT/default/a/k"
	sh_kill9
	: >"$LOG"
	sh_mount -o log_level=warn
	grep -qF "statehoused: warning: the previous run did not stop cleanly (crash or kill); recovered from the log" "$LOG"
	grep -qF "statehoused: warning: mountpoint '$MNT' is a dead FUSE mount" "$LOG"
	refute grep -qE 'serving|recovery:' "$LOG"
	run "$STATEHOUSED" "$DATA" "$SH_TMP" -o log_level=loud
	assert_failure 2
	assert_output "statehoused: unknown log_level 'loud' (err, warn, info, debug)"
}

@test "a daemonised start that fails after the fork says why on the caller's stderr and exits 1" {
	touch "$SH_TMP/file"
	run "$STATEHOUSED" "$SH_TMP/file" "$MNT"
	assert_failure 1
	assert_output "statehoused: error: cannot open lock file '$(realpath "$SH_TMP/file")/statehoused.lock': Not a directory"
	mkdir -m 700 "$DATA" # an open one would add a warning to the message
	head -c 8192 /dev/urandom >"$DATA/statehouse.db"
	run "$STATEHOUSED" "$DATA" "$MNT"
	assert_failure 1
	assert_output "statehoused: error: cannot open store '$DATA_REAL/statehouse.db': file is not a database (sqlite code 26)"
	refute sh_is_mounted "$MNT"
}

@test "daemonised, the start's messages reach the caller's stderr and the later ones go to syslog as statehoused[PID], facility daemon" {
	local sock="$SH_TMP/log.sock" syslog="$SH_TMP/syslog"
	# A syslog daemon of our own on a socket that is /dev/log in the namespace only.
	"$SH_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")' "$sock" "$syslog" </dev/null 2>>"$SH_TMP/listener.err" 3>&- &
	LISTENER=$!
	sh_wait_until 10 test -S "$sock"
	ns_start
	in_ns sh -ec "
		mount -t tmpfs -o mode=0755 tmpfs /dev
		mknod -m 0666 /dev/null c 1 3; mknod -m 0666 /dev/zero c 1 5
		mknod -m 0666 /dev/urandom c 1 9; mknod -m 0666 /dev/random c 1 8
		mknod -m 0600 /dev/fuse c 10 229
		touch /dev/log; mount --bind $sock /dev/log
		mount -t tmpfs -o mode=0755 tmpfs /srv; mkdir /srv/m"
	in_ns "$STATEHOUSED" "$DATA" /srv/m $(sh_mode_args) 2>"$SH_TMP/start.err" 3>&-
	grep -qF "statehoused: serving '$DATA_REAL' at '/srv/m'" "$SH_TMP/start.err"
	in_ns sh -c 'echo v >/srv/m/default/a/k'
	pid=$(in_ns jq .pid /srv/m/.status)
	in_ns umount /srv/m
	sh_wait_exit "$pid"
	# <30>: facility daemon (3), priority info (6).
	grep -qE "^<30>.* statehoused\[$pid\]: unmounted '/srv/m'; stopping$" "$syslog" || fail "syslog: $(cat "$syslog")"
	grep -qE "^<30>.* statehoused\[$pid\]: snapshot at commit 1 written" "$syslog"
	refute grep -q 'unmounted' "$SH_TMP/start.err"
}
