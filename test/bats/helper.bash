# SPDX-License-Identifier: MIT
# Shared bats helpers: mount a real statehoused in the foreground (in the background of
# the test), wait for the mount, unmount in teardown, and fail on sanitizer reports.
#
# Environment:
#   STATEHOUSED               daemon binary (default: build/statehoused)
#   STATEHOUSECTL             statehousectl (default: mountctl/statehousectl beside it)
#   STATEHOUSE_TEST_SINGLE=1  run the daemon with -s (single-threaded loop)
#   STATEHOUSE_TEST_STRICT=1  a skip is a failure (CI)
#   STATEHOUSE_TEST_ETCD=HOST:PORT[,...]  mount every test's daemon on a volume of its own
#                             in that etcd (sh_mount; scripts/test's etcd stage)
#   STATEHOUSE_SANITIZER_LOG_DIR  where ASAN_OPTIONS/UBSAN_OPTIONS log_path write reports
#                             (scripts/test); any new report there fails the current test

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATEHOUSED="${STATEHOUSED:-$REPO_ROOT/build/statehoused}"
[[ "$STATEHOUSED" = /* ]] || STATEHOUSED="$REPO_ROOT/$STATEHOUSED"
# statehousectl of the daemon's own build (meson puts it in mountctl/): the sanitized
# build's ctl goes with the sanitized daemon.
STATEHOUSECTL="${STATEHOUSECTL:-$(dirname "$STATEHOUSED")/mountctl/statehousectl}"
# Debian's python3 directly: a version manager's shim in PATH costs ~1.5 s per call here.
SH_PYTHON=/usr/bin/python3
[ -x "$SH_PYTHON" ] || SH_PYTHON=python3

load_libs() {
	load /usr/lib/bats/bats-support/load
	load /usr/lib/bats/bats-assert/load
}

# sh_skip REASON: skip only what this machine cannot do; strict mode turns it into a failure.
sh_skip() {
	if [ "${STATEHOUSE_TEST_STRICT:-0}" = 1 ]; then
		echo "strict mode: would skip: $*" >&2
		return 1
	fi
	skip "$*"
}

# Per-test scratch: $DATA (data dir), $MNT (mountpoint), $LOG (daemon stderr).
sh_setup_dirs() {
	SH_TMP="$(mktemp -d "${BATS_TMPDIR:-/tmp}/statehouse.XXXXXX")"
	SH_VOLUME=
	DATA="$SH_TMP/data"
	MNT="$SH_TMP/mnt"
	LOG="$SH_TMP/daemon.log"
	mkdir -p "$MNT"
	export DATA MNT LOG SH_TMP
}

sh_is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# sh_wait_mounted MNT PID: wait (deadline 20 s) until MNT is in mountinfo and answers.
sh_wait_mounted() {
	local mnt="$1" pid="$2" i
	for ((i = 0; i < 400; i++)); do
		if sh_is_mounted "$mnt" && stat "$mnt/.health" >/dev/null 2>&1; then
			return 0
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			echo "daemon exited before the mount was live; log:" >&2
			cat "$LOG" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "mount did not appear at $mnt within 20 s; log:" >&2
	cat "$LOG" >&2
	return 1
}

# sh_etcd_volume: with STATEHOUSE_TEST_ETCD (the endpoints of a running etcd), make this
# test's own volume once (sh_setup_dirs starts over) and set SH_STORE to its URI.
sh_etcd_volume() {
	if [ -z "${SH_VOLUME:-}" ]; then
		SH_VOLUME_SEQ=$((${SH_VOLUME_SEQ:-0} + 1))
		SH_VOLUME="t$(basename "$SH_TMP" | tr -cd 'A-Za-z0-9')$$n$SH_VOLUME_SEQ"
		if ! "$STATEHOUSECTL" init "etcd://$STATEHOUSE_TEST_ETCD/$SH_VOLUME" >>"$LOG" 2>&1; then
			echo "cannot create the etcd volume $SH_VOLUME; log:" >&2
			cat "$LOG" >&2
			SH_VOLUME=
			return 1
		fi
		export SH_VOLUME
	fi
	SH_STORE="etcd://$STATEHOUSE_TEST_ETCD/$SH_VOLUME"
}

# sh_store_args [daemon args...]: SH_STORE_ARGS gets -o store= of this test's etcd volume
# when the suite runs against etcd (STATEHOUSE_TEST_ETCD) and the args name no store.
sh_store_args() {
	local a
	SH_STORE_ARGS=()
	[ -n "${STATEHOUSE_TEST_ETCD:-}" ] || return 0
	for a in "$@"; do
		[[ "$a" = *store=* ]] && return 0
	done
	sh_etcd_volume || return 1
	SH_STORE_ARGS=(-o "store=$SH_STORE")
}

# sh_second_teardown: unmount a second daemon (PID2 at MNT2, its log LOG2, as the tests of
# several mounts of one etcd volume start it) and fail on a sanitizer report in its log.
sh_second_teardown() {
	if [ -n "${PID2:-}" ]; then
		fusermount3 -u "$MNT2" 2>/dev/null || umount -l "$MNT2" 2>/dev/null || true
		wait "$PID2" 2>/dev/null || true
		PID2=
	fi
	if [ -f "${LOG2:-}" ] && grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|BUG at' "$LOG2" >&2; then
		return 1
	fi
}

# sh_mount [extra daemon args...]: start the daemon in the foreground, in the background,
# with fd 3 closed (or bats waits for it), and wait for the mount.
sh_mount() {
	local single=()
	[ "${STATEHOUSE_TEST_SINGLE:-0}" = 1 ] && single=(-s)
	sh_store_args "$@" || return 1
	"$STATEHOUSED" "$DATA" "$MNT" -f "${single[@]}" "${SH_STORE_ARGS[@]}" "$@" >>"$LOG" 2>&1 3>&- &
	SH_PID=$!
	export SH_PID
	sh_wait_mounted "$MNT" "$SH_PID"
}

# sh_umount: clean unmount; waits for the daemon to exit (deadline 20 s).
sh_umount() {
	local i
	if sh_is_mounted "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	fi
	if [ -n "${SH_PID:-}" ]; then
		for ((i = 0; i < 400; i++)); do
			kill -0 "$SH_PID" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$SH_PID" 2>/dev/null; then
			echo "daemon $SH_PID did not exit after unmount" >&2
			kill -9 "$SH_PID" 2>/dev/null || true
			return 1
		fi
		wait "$SH_PID" 2>/dev/null || true
		SH_PID=
	fi
}

# sh_kill9: SIGKILL the daemon, its supervisor and the worker serving (the mount stays
# behind, answering ENOTCONN); returns once both are gone.
sh_kill9() {
	local kids k i
	kids=$(cat "/proc/$SH_PID/task/$SH_PID/children" 2>/dev/null || true)
	kill -9 "$SH_PID"
	for k in $kids; do kill -9 "$k" 2>/dev/null || true; done
	wait "$SH_PID" 2>/dev/null || true
	for k in $kids; do
		i=0
		while kill -0 "$k" 2>/dev/null && [ $((i++)) -lt 1000 ]; do
			sleep 0.01
		done
	done
	SH_PID=
}

# sh_check_log: fail if the daemon log holds a sanitizer report or a crash.
sh_check_log() {
	sh_check_sanitizer_dir || return 1
	[ -f "$LOG" ] || return 0
	if grep -E 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)|BUG at' "$LOG" >&2; then
		echo "daemon log holds a sanitizer report or BUG (full log: $LOG)" >&2
		return 1
	fi
}

# Default setup/teardown for files that mount one daemon per test.
sh_default_setup() {
	load_libs
	sh_setup_dirs
	sh_mount "$@"
}

sh_default_teardown() {
	local rc=0
	sh_umount || rc=1
	if sh_is_mounted "$MNT"; then umount -l "$MNT" 2>/dev/null || true; fi
	sh_check_log || rc=1
	[ $rc -eq 0 ] && rm -rf "$SH_TMP"
	return $rc
}

# errno_of CMD...: run a python3 snippet-free syscall check; prints the errno name of a
# failing path operation. Usage: sh_errno op path [path2|data]
#   ops: open_r open_w create write_big rename mkdir rmdir unlink read stat
sh_errno() {
	"$SH_PYTHON" "$REPO_ROOT/test/bats/errno.py" "$@"
}

# sh_as UID GID[,GROUP...] CMD...: run CMD as UID with primary group GID and the given
# supplementary groups (none without a comma), in $MNT as its working directory: paths
# relative to the mount need no search permission on the directories above it (scripts/test
# keeps them 0700), so tests of other users pass such paths. The mount needs allow_other.
sh_as() {
	local uid=$1 gid=${2%%,*} groups=--clear-groups
	[[ "$2" = *,* ]] && groups="--groups=${2#*,}"
	shift 2
	(cd "$MNT" && exec setpriv --reuid="$uid" --regid="$gid" "$groups" "$@")
}

# sh_errno_as UID GID[,GROUP...] op path [arg]: sh_errno as another user (see sh_as). The
# script goes in on stdin: the repository may lie where that user cannot read it.
sh_errno_as() {
	local uid=$1 gid=$2
	shift 2
	sh_as "$uid" "$gid" "$SH_PYTHON" - "$@" <"$REPO_ROOT/test/bats/errno.py"
}

# --- helpers for the behaviour tests (10-, 20-, 30-*.bats) ---

# sh_remount [daemon args...]: unmount the per-test daemon and mount it again on the same
# DATADIR with other options (e.g. -o max_open_txns=2).
sh_remount() {
	sh_umount
	sh_mount "$@"
}

# sh_probe_ts: make exactly one live commit (key probe/p/ts) and print its commit_ts. Two
# probes around an action tell how many commit_ts the action consumed (no gaps allowed).
sh_probe_ts() {
	mkdir -p "$MNT/probe/p"
	echo probe >"$MNT/probe/p/ts"
	sh_xattr commit_ts "$MNT/probe/p/ts"
}

# sh_jq FILTER FILE: jq -e FILTER on FILE; on failure show the JSON and the filter.
sh_jq() {
	local json
	json="$(cat "$2")" || { echo "cannot read $2" >&2; return 1; }
	if ! jq -e "$1" <<<"$json" >/dev/null; then
		echo "jq -e '$1' failed on $2: $json" >&2
		return 1
	fi
}

# sh_wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds; fail after SECONDS.
# For waiting on the daemon (reaper, expiry), never for asserting how long something took.
sh_wait_until() {
	local secs="$1" end
	shift
	end=$((SECONDS + secs))
	while ! "$@" 2>/dev/null; do
		if ((SECONDS >= end)); then
			echo "condition not met within ${secs} s: $*" >&2
			return 1
		fi
		sleep 0.05
	done
}

# sh_commit TXNDIR: commit a transaction as a user does.
sh_commit() {
	mv "$1/.commit.pending" "$1/.commit"
}

# sh_longname N [CHAR]: a name of N bytes.
sh_longname() {
	local s
	printf -v s '%*s' "$1" ''
	printf '%s' "${s// /${2:-x}}"
}

# --- daemon life, crash and storage helpers (40-daemon, 50-crash, 60-storage-errors, 90-quickstart)

# sh_check_sanitizer_dir: fail on sanitizer report files that no earlier test claimed, and
# mark them claimed. scripts/test points ASAN_OPTIONS/UBSAN_OPTIONS log_path into
# STATEHOUSE_SANITIZER_LOG_DIR, so reports of daemonised or exiting daemons are caught too.
sh_check_sanitizer_dir() {
	local dir="${STATEHOUSE_SANITIZER_LOG_DIR:-}" f rc=0
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	for f in "$dir"/*; do
		[ -f "$f" ] || continue
		case "$f" in *.reported) continue ;; esac
		echo "sanitizer report $f:" >&2
		cat "$f" >&2
		mv "$f" "$f.reported"
		rc=1
	done
	return $rc
}

# sh_mode_args: sh_mount's mode flags, for tests that start the daemon themselves.
sh_mode_args() {
	[ "${STATEHOUSE_TEST_SINGLE:-0}" = 1 ] && echo -s
	return 0
}

# sh_mount_count MNT: how many mounts sit at MNT (a dead one under a live one counts).
sh_mount_count() {
	awk -v m="$1" '$5 == m { n++ } END { print n + 0 }' /proc/self/mountinfo
}

# sh_daemon_pid MNT: pid of the statehoused serving MNT (a daemonised one is no child of ours).
sh_daemon_pid() {
	local p
	for p in /proc/[0-9]*; do
		[[ "$(readlink "$p/exe" 2>/dev/null)" == */statehoused* ]] || continue
		if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -- "$1"; then
			echo "${p#/proc/}"
			return 0
		fi
	done
	return 1
}

# sh_wait_exit PID: wait (deadline 20 s) until process PID is gone.
sh_wait_exit() {
	local i
	for ((i = 0; i < 400; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	echo "process $1 still runs after 20 s" >&2
	return 1
}

# sh_restart [daemon args...]: SIGKILL the daemon, then start a new one on the same DATADIR
# and MOUNTPOINT with no cleanup in between (the new daemon detaches the dead mount).
sh_restart() {
	sh_kill9
	sh_mount "$@"
}

# sh_xattr NAME PATH: the value of user.statehouse.NAME (version, commit_ts) of a key.
sh_xattr() {
	getfattr --only-values --absolute-names -n "user.statehouse.$1" -- "$2"
}

# sh_dump_tree MNT: one line per live key below MNT, reserved dot names left out, sorted:
# "./path version commit_ts sha256". Compare two dumps to see that nothing changed.
sh_dump_tree() {
	local mnt=$1 f
	(cd "$mnt" && find . -path './.*' -prune -o -type f -print | LC_ALL=C sort) |
		while read -r f; do
			printf '%s %s %s %s\n' "$f" "$(sh_xattr version "$mnt/$f")" \
				"$(sh_xattr commit_ts "$mnt/$f")" "$(sha256sum <"$mnt/$f" | cut -d' ' -f1)"
		done
}

# sh_umount_below DIR: unmount every mount below DIR (daemonised daemons included) and wait
# for their daemons to exit; for tests that start daemons outside sh_mount.
sh_umount_below() {
	local m pid rc=0
	while read -r m; do
		pid=$(sh_daemon_pid "$m") || pid=
		fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || rc=1
		if [ -n "$pid" ]; then sh_wait_exit "$pid" || rc=1; fi
	done < <(awk -v top="$1/" 'index($5, top) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	return $rc
}

# sh_start_commit_loops TAG: start the multi-key commit loops w1 and w2 (commit_loop.py),
# each acknowledging to $SH_TMP/ack.<w>; their pids go to LOOPS.
sh_start_commit_loops() {
	local w
	for w in w1 w2; do
		"$SH_PYTHON" "$REPO_ROOT/test/bats/commit_loop.py" "$MNT" "$w$1" "$SH_TMP/ack.$w" \
			2>>"$SH_TMP/loop.log" 3>&- &
		LOOPS+=($!)
	done
}

# sh_wait_acks N: wait (deadline 60 s) until both loops acknowledged N commits.
sh_wait_acks() {
	local w i n ok=0
	for ((i = 0; i < 1200; i++)); do
		ok=0
		for w in w1 w2; do
			n=$(cat "$SH_TMP/ack.$w" 2>/dev/null | wc -l)
			[ "$n" -ge "$1" ] && ok=$((ok + 1))
		done
		[ "$ok" -eq 2 ] && return 0
		sleep 0.05
	done
	return 1
}
