#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The supervisor (the default; -o supervise=0 is the single process): it mounts and keeps
# /dev/fuse, a worker process serves. When the worker dies (SIGKILL here) the kernel resends
# what it had not answered and a new worker takes over: clients see a pause, never an error,
# the mount never leaves mountinfo, read handles, inode numbers and names survive, a
# commit that was durable but unanswered is answered once, and a write handle's buffered
# bytes fail with EIO instead of landing half. The supervisor's own death is a dead mount.

load helper

setup() {
	sh_default_setup
	A="$MNT/ns/ag"
	mkdir -p "$A"
	LOOPS=()
}

teardown() {
	stop_loops
	sh_default_teardown
}

# stop_loops: end the background loops (they watch $SH_TMP/stop), and whatever they ran.
stop_loops() {
	local pid
	touch "$SH_TMP/stop"
	for pid in "${LOOPS[@]}"; do
		sh_wait_exit "$pid" >/dev/null 2>&1 || {
			pkill -9 -P "$pid" 2>/dev/null
			kill -9 "$pid" 2>/dev/null
		}
		wait "$pid" 2>/dev/null || true
	done
	LOOPS=()
}

# worker_pid: the pid .status names (the worker serving now).
worker_pid() { jq -r .pid "$MNT/.status"; }

# status_field NAME: one field of .status.
status_field() { jq -r ".$1" "$MNT/.status"; }

# test_head_over N: the mount's head commit_ts is past N.
test_head_over() { [ "$(status_field head_commit_ts)" -gt "$1" ]; }

# metric NAME: the value of statehouse_NAME in .metrics.
metric() { awk -v m="statehouse_$1" '$1 == m { print $2 }' "$MNT/.metrics"; }

# worker_replaced OLD: a worker other than OLD serves the mount.
worker_replaced() {
	local p
	p=$(worker_pid) && [ -n "$p" ] && [ "$p" != "$1" ] && [ "$p" != null ]
}

# kill_worker: SIGKILL the worker and wait (deadline 20 s) until another one serves.
kill_worker() {
	local old
	old=$(worker_pid)
	[ "$old" != "$SH_PID" ] || fail "the worker is the supervisor ($old)"
	kill -9 "$old"
	sh_wait_until 20 worker_replaced "$old" || fail "no new worker after killing $old; log: $(cat "$LOG")"
}

# mounted_nofork: is $MNT in mountinfo (bash builtins only, so it can poll every 10 ms)?
mounted_nofork() {
	local mp
	while read -r _ _ _ _ mp _; do
		[ "$mp" = "$MNT" ] && return 0
	done </proc/self/mountinfo
	return 1
}

# poll_mountinfo: every 10 ms until stopped, count a poll and note any moment $MNT is
# missing from mountinfo.
poll_mountinfo() {
	while [ ! -e "$SH_TMP/stop" ]; do
		mounted_nofork || echo "gap at $(date +%s.%N)" >>"$SH_TMP/gaps"
		echo >>"$SH_TMP/polls"
		sleep 0.01
	done
}

# reader: cat the keys r1..r4 together until stopped; any failure or wrong byte is noted.
reader() {
	local out want
	want=$(printf 'value %s\n' 1 2 3 4)
	while [ ! -e "$SH_TMP/stop" ]; do
		if ! out=$(cat "$A/r1" "$A/r2" "$A/r3" "$A/r4" 2>&1); then
			echo "reader: cat failed: $out" >>"$SH_TMP/errors"
		elif [ "$out" != "$want" ]; then
			echo "reader: read '$out'" >>"$SH_TMP/errors"
		fi
	done
}

# writer NAME: write NAME-1, NAME-2, ... into key NAME (coreutils echo: its close, where
# the commit happens, fails it on an error, unlike bash's builtin) and read each back,
# until stopped; the count of acknowledged writes goes to $SH_TMP/count.NAME.
writer() {
	local i=0 out
	while [ ! -e "$SH_TMP/stop" ]; do
		i=$((i + 1))
		if ! out=$(/bin/echo "$1-$i" 2>&1 >"$A/$1"); then
			echo "writer $1: write $i failed: $out" >>"$SH_TMP/errors"
			break
		fi
		echo "$i" >"$SH_TMP/count.$1"
		if ! out=$(cat "$A/$1" 2>&1); then
			echo "writer $1: read back $i failed: $out" >>"$SH_TMP/errors"
		elif [ "$out" != "$1-$i" ]; then
			echo "writer $1: wrote $1-$i, read back '$out'" >>"$SH_TMP/errors"
		fi
	done
}

# check_history NAME N: key NAME has exactly N versions, 1..N with increasing commit_ts,
# version k holding NAME-k: no write committed twice, none lost.
check_history() {
	local h="$MNT/.history/ns/ag/$1" n=$2
	run jq -s -e --argjson n "$n" 'length == $n and
		([.[].version] == [range(1; $n + 1)]) and
		([.[].commit_ts] as $t | [range(1; length) | $t[.] > $t[. - 1]] | all)' "$h/index.jsonl"
	[ "$status" -eq 0 ] || fail "history of $1 is not versions 1..$n: $(cat "$h/index.jsonl")"
	diff <(cd "$h" && cat $(seq 1 "$n")) <(seq -f "$1-%g" 1 "$n") ||
		fail "the values of $1's versions are not $1-1..$1-$n"
}

@test "the worker is a child process of the supervisor, which is the process that mounted" {
	w=$(worker_pid)
	[ "$(status_field supervisor_pid)" = "$SH_PID" ]
	[ "$w" != "$SH_PID" ]
	[ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$w/status")" = "$SH_PID" ]
	[ "$(status_field worker_restarts)" = 0 ]
	[ "$(status_field last_restart_pause_ms)" = null ]
}

@test "SIGKILLs of the worker under readers and writers: no call fails, the mount never leaves mountinfo, nothing commits twice" {
	local i w kills=12
	for i in 1 2 3 4; do echo "value $i" >"$A/r$i"; done
	poll_mountinfo 3>&- &
	LOOPS+=($!)
	reader 3>&- &
	LOOPS+=($!)
	reader 3>&- &
	LOOPS+=($!)
	for w in w1 w2; do
		writer "$w" 3>&- &
		LOOPS+=($!)
	done
	sh_wait_until 20 test -s "$SH_TMP/count.w2"
	for ((i = 1; i <= kills; i++)); do
		# A random moment: 20..319 ms after the previous worker took over.
		sleep "0.$(printf '%03d' $((RANDOM % 300 + 20)))"
		kill_worker
	done
	sleep 0.3
	stop_loops

	[ ! -s "$SH_TMP/errors" ] || fail "client calls failed: $(head -n 20 "$SH_TMP/errors"); daemon log: $(grep -v "^statehoused: recovery" "$LOG" | tail -n 40)"
	[ ! -s "$SH_TMP/gaps" ] || fail "the mount left mountinfo: $(cat "$SH_TMP/gaps")"
	[ "$(wc -l <"$SH_TMP/polls")" -ge "$kills" ] || fail "the mountinfo poll did not run"
	[ "$(status_field supervisor_pid)" = "$SH_PID" ]
	[ "$(status_field worker_restarts)" = "$kills" ]
	[ "$(metric worker_restarts_total)" = "$kills" ]
	jq -e '.last_restart_pause_ms > 0' "$MNT/.status"
	for w in w1 w2; do
		check_history "$w" "$(cat "$SH_TMP/count.$w")"
	done
	sh_umount
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
}

@test "an open read handle survives the worker's death: reading on gives the right bytes" {
	local i first rest want
	for ((i = 1; i <= 40; i++)); do echo "value $i" >"$A/k"; done
	want=$(cat "$MNT/.history/ns/ag/k/index.jsonl")
	# A generated file has a real file handle (direct I/O: every read reaches the worker).
	exec 5<"$MNT/.history/ns/ag/k/index.jsonl"
	read -r -N 100 first <&5
	[ "${#first}" -eq 100 ]
	kill_worker
	rest=$(cat <&5)
	exec 5<&-
	[ "$first$rest" = "$want" ] || fail "read $first$rest, want $want"
	grep -q 'took over 1 open file handles; 0 could not be' "$LOG"
}

@test "open write handles survive the worker's death: their bytes are written again and commit once; an append's die (EIO), no half value lands" {
	echo old >"$A/k"
	echo old >"$A/j"
	echo old >"$A/ap"
	v=$(sh_xattr version "$A/k")
	va=$(sh_xattr version "$A/ap")
	# Python, so no forked child closes (and so commits) the handles before the kill.
	run "$SH_PYTHON" - "$MNT" "$A" <<'EOF'
import json, os, sys, time
mnt, a = sys.argv[1], sys.argv[2]
def worker():
    with open(mnt + "/.status") as f:
        return json.load(f)["pid"]
old = worker()
k = os.open(a + "/k", os.O_WRONLY | os.O_TRUNC)
j = os.open(a + "/j", os.O_WRONLY | os.O_TRUNC)
n = os.open(a + "/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
ap = os.open(a + "/ap", os.O_WRONLY | os.O_APPEND)
for fd in (k, j, n, ap):
    os.write(fd, b"abc")
os.kill(old, 9)
while worker() == old:
    time.sleep(0.01)
for what, call in (("write k", lambda: os.write(k, b"def")), ("close k", lambda: os.close(k)),
                   ("close j", lambda: os.close(j)), ("close new", lambda: os.close(n)),
                   ("write ap", lambda: os.write(ap, b"def")), ("close ap", lambda: os.close(ap))):
    try:
        call()
        print(what, "OK")
    except OSError as e:
        print(what, os.strerror(e.errno))
EOF
	echo "$output"
	assert_line "write k OK"
	assert_line "close k OK"
	assert_line "close j OK"
	assert_line "close new OK"
	assert_line "write ap Input/output error"
	assert_line "close ap Input/output error"
	[ "$(cat "$A/k")" = abcdef ]
	[ "$(sh_xattr version "$A/k")" = $((v + 1)) ]
	[ "$(cat "$A/j")" = abc ]
	[ "$(cat "$A/new")" = abc ]
	[ "$(cat "$A/ap")" = old ]
	[ "$(sh_xattr version "$A/ap")" = "$va" ]
	grep -q 'took over 3 open file handles; 1 could not be' "$LOG" || fail "$(grep 'took over' "$LOG")"
	# The key takes writes again through a new handle.
	echo new >"$A/ap"
	[ "$(cat "$A/ap")" = new ]
}

@test "names and inode numbers survive the worker's death, and a directory the kernel cached lists" {
	mkdir -p "$A/d/e"
	echo 1 >"$A/d/x"
	echo 2 >"$A/d/y"
	before=$(stat -c '%n %i' "$A/d" "$A/d/e" "$A/d/x" "$A/d/y")
	list=$(ls "$A/d")
	kill_worker
	after=$(stat -c '%n %i' "$A/d" "$A/d/e" "$A/d/x" "$A/d/y")
	[ "$before" = "$after" ] || fail "inode numbers changed: $before / $after"
	run ls "$A/d"
	assert_success
	assert_output "$list"
	[ "$(cat "$A/d/y")" = 2 ]
	# A new name after the takeover gets a number of its own.
	echo 3 >"$A/d/z"
	z=$(stat -c %i "$A/d/z")
	! grep -qw "$z" <<<"$before" || fail "inode $z of a new key is an old one's: $before"
	grep -q 'took over [0-9]* inodes the kernel holds' "$LOG"
}

@test "a transaction open when the worker dies goes on: its snapshot, staged values and open files, then one commit" {
	echo before >"$A/k"
	T="$MNT/.tx/job"
	mkdir "$T"
	echo staged >"$T/ns/ag/k"
	# a commit after the transaction began: its snapshot does not see it, before or after
	echo later >"$A/seen"
	run sh_errno stat "$T/ns/ag/seen"
	assert_output ENOENT
	exec 4>"$T/ns/ag/f"
	printf abc >&4
	kill_worker
	[ "$(cat "$T/ns/ag/k")" = staged ]
	run sh_errno stat "$T/ns/ag/seen"
	assert_output ENOENT
	printf def >&4
	exec 4>&-
	echo more >"$T/ns/ag/k2"
	grep -q 'took over [1-9][0-9]* transaction records' "$LOG"
	sh_commit "$T"
	[ "$(cat "$A/k")" = staged ]
	[ "$(cat "$A/k2")" = more ]
	[ "$(cat "$A/f")" = abcdef ]
	jq -e '.commit_ts > 0 and .txn == "job"' "$T/.commit"
	# one commit of the transaction: k has the version before and the staged one
	[ "$(jq -s 'length' "$MNT/.history/ns/ag/k/index.jsonl")" = 2 ]
}

@test "a transaction that lost to another committer before the worker's death still conflicts after it" {
	echo v0 >"$A/c"
	T="$MNT/.tx/late"
	mkdir "$T"
	echo mine >"$T/ns/ag/c"
	echo theirs >"$A/c" # first committer wins
	kill_worker
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	[ "$(cat "$A/c")" = theirs ]
	jq -e '.conflict == "write"' "$T/.status"
}

@test "a commit made durable but not answered before the worker died is answered once, from its record" {
	sh_umount
	STATEHOUSE_ANSWER_PAUSE_MS=60000 sh_mount
	if grep -q 'ignoring STATEHOUSE_ANSWER_PAUSE_MS' "$LOG"; then
		sh_skip "this build has no fault injection (meson -Dfault_injection=true)"
	fi
	T="$MNT/.tx/once"
	mkdir "$T"
	echo once >"$T/ns/ag/k"
	"$SH_PYTHON" "$REPO_ROOT/test/bats/errno.py" rename "$T/.commit.pending" "$T/.commit" \
		>"$SH_TMP/rename.out" 3>&- &
	LOOPS+=($!)
	sh_wait_until 20 grep -q "test hook: pausing .* transaction 'once'" "$LOG"
	ts=$(sed -n "s/.*transaction 'once' at commit_ts \([0-9]*\) (durable).*/\1/p" "$LOG")
	[ "$(metric resent_requests_applied_total)" = 0 ]
	kill_worker
	wait "${LOOPS[0]}"
	LOOPS=()
	[ "$(cat "$SH_TMP/rename.out")" = OK ]
	[ "$(cat "$A/k")" = once ]
	[ "$(sh_xattr commit_ts "$A/k")" = "$ts" ]
	run jq -s -c '[.[] | {version, commit_ts, txn}]' "$MNT/.history/ns/ag/k/index.jsonl"
	assert_output "[{\"version\":1,\"commit_ts\":$ts,\"txn\":\"once\"}]"
	[ "$(grep -c '"txn":"once"' "$MNT/.events/all.jsonl")" -eq 1 ]
	[ "$(metric resent_requests_applied_total)" -ge 1 ]
	[ "$(metric resent_requests_total)" -ge 1 ]
	# The next commit takes the next commit_ts: none was used twice or skipped.
	[ "$(sh_probe_ts)" -eq $((ts + 1)) ]
}

@test "clone_fd is refused under a supervisor (exit 2), and works with supervise=0" {
	sh_umount
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o clone_fd
	[ "$status" -eq 2 ]
	assert_output "statehoused: clone_fd cannot keep requests across a worker's death: use it with -o supervise=0"
	refute sh_is_mounted "$MNT"
	sh_mount -o clone_fd,supervise=0,max_threads=2
	echo v >"$A/k"
	[ "$(cat "$A/k")" = v ]
}

@test "with -o supervise=0 one process serves and its death leaves a dead mount" {
	sh_umount
	sh_mount -o supervise=0
	[ "$(status_field supervisor_pid)" = null ]
	[ "$(worker_pid)" = "$SH_PID" ]
	echo v >"$A/k"
	sh_kill9
	run sh_errno stat "$A/k"
	assert_output ENOTCONN
	sh_is_mounted "$MNT"
}

@test "the supervisor's death kills the worker and leaves a dead mount" {
	echo v >"$A/k"
	w=$(worker_pid)
	# the supervisor alone: its worker dies with it (sh_kill9 would kill both)
	kill -9 "$SH_PID"
	wait "$SH_PID" 2>/dev/null || true
	SH_PID=
	sh_wait_exit "$w"
	run sh_errno stat "$MNT/.health"
	assert_output ENOTCONN
	# A new daemon detaches the dead mount and serves what was committed.
	sh_mount
	[ "$(sh_mount_count "$MNT")" -eq 1 ]
	[ "$(cat "$A/k")" = v ]
}

@test "the supervisor exits 0 after an unmount and after SIGTERM, and leaves no process behind" {
	local rc
	kill_worker
	fusermount3 -u "$MNT"
	rc=0
	wait "$SH_PID" || rc=$?
	SH_PID=
	[ "$rc" -eq 0 ] || fail "the supervisor exited $rc after the unmount; log: $(cat "$LOG")"
	run pgrep -f "$DATA"
	assert_failure

	sh_mount
	w=$(worker_pid)
	kill -TERM "$SH_PID"
	rc=0
	wait "$SH_PID" || rc=$?
	SH_PID=
	[ "$rc" -eq 0 ] || fail "the supervisor exited $rc after SIGTERM; log: $(cat "$LOG")"
	! kill -0 "$w" 2>/dev/null
	! sh_is_mounted "$MNT"
	run pgrep -f "$DATA"
	assert_failure
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
}

@test "a commit the dead worker made durable but never invalidated is not served stale from the kernel's cache" {
	echo old >"$A/k"
	sh_umount
	STATEHOUSE_NOTIFY_PAUSE_MS=4000 sh_mount -o cache_timeout_s=3600
	if grep -q 'ignoring STATEHOUSE_NOTIFY_PAUSE_MS' "$LOG"; then
		sh_skip "this build has no fault injection (meson -Dfault_injection=true)"
	fi
	[ "$(cat "$A/k")" = old ] # in the kernel's page cache now, to stay (no commit yet)
	head=$(status_field head_commit_ts)
	mkdir "$MNT/.tx/t"
	echo new >"$MNT/.tx/t/ns/ag/k"
	mv "$MNT/.tx/t/.commit.pending" "$MNT/.tx/t/.commit" &
	LOOPS+=($!)
	# durable, and the notifier asleep before it invalidates: the worker dies now
	sh_wait_until 10 test_head_over "$head"
	kill_worker
	wait "${LOOPS[0]}"
	[ "$(cat "$A/k")" = new ]
	grep -q "invalidated the caches of commits" "$LOG"
}
