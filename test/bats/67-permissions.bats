#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Owners and modes of namespaces and agents (decisions.md 22): chown/chmod is a commit that
# survives restarts and crashes, keys take their agent's owner and mode, and with
# allow_other the kernel (default_permissions) keeps users apart in the live tree, the past,
# .events and transactions. Other users run through sh_as with paths relative to the mount.

A=4001 # user A, owner of the private agent ns/a
B=4002 # user B, a stranger to it
C=4003 # user C, a second stranger
G=4100 # a group: B's supplementary or C's primary, where a test says so

setup() {
	load helper
	sh_default_setup -o allow_other
}

teardown() {
	sh_default_teardown
}

# in_mnt CMD...: run CMD in $MNT, in a subshell (relative paths then name the same files
# for root as for sh_as, and the test's cwd never holds the mount busy).
in_mnt() {
	(cd "$MNT" && "$@")
}

# assert_owner "PATH UID GID MODE"...: each path below the mount shows that owner, group
# and mode (one stat for all: this file makes many such checks).
assert_owner() {
	local have
	have=$(cd "$MNT" && stat -c '%n %u %g %a' -- "${@%% *}")
	[ "$have" = "$(printf '%s\n' "$@")" ] || fail "want: $(printf '[%s] ' "$@"), have: ${have//$'\n'/, }"
}

# ops_at TS: the ops of commit TS in .events/all.jsonl, as compact JSON.
ops_at() {
	jq -c --argjson t "$1" 'select(.commit_ts == $t) | .ops' "$MNT/.events/all.jsonl"
}

# attr_op AGENT UID GID MODE: the ops of a commit that set ns/AGENT's owner and mode.
attr_op() {
	printf '[{"ns":"ns","agent":"%s","op":"attr","value":{"uid":%s,"gid":%s,"mode":"%s"}}]' "$@"
}

# private_a: key ns/a/k = secret, then ns/a belongs to user A with 0700.
private_a() {
	mkdir -p "$MNT/ns/a"
	echo secret >"$MNT/ns/a/k"
	chown "$A:$A" "$MNT/ns/a"
	chmod 0700 "$MNT/ns/a"
}

# --- defaults ----------------------------------------------------------------------------

@test "a namespace belongs to the daemon's user with 0755, agents and keys inherit it without x, and .tx/NAME to whoever began it" {
	mkdir -p "$MNT/ns/a/d"
	echo v >"$MNT/ns/a/k"
	echo w >"$MNT/ns/a/d/k"
	assert_owner ". 0 0 755" "ns 0 0 755" "ns/a 0 0 755" "ns/never 0 0 755" \
		"ns/a/k 0 0 644" "ns/a/d 0 0 755" "ns/a/d/k 0 0 644" ".tx 0 0 1777"
	# Anyone may read a default agent's keys; only the daemon's user may write them.
	run sh_as $B $B cat ns/a/k
	assert_output v
	run sh_errno_as $B $B write ns/a/k x
	assert_output EACCES
	run sh_errno_as $B $B write ns/a/new x
	assert_output EACCES
	[ "$(cat "$MNT/ns/a/k")" = v ]
	# Anyone may begin a transaction: it is theirs, 0700, and 0500 once committed.
	chmod 0777 "$MNT/ns"
	sh_as $A $A mkdir .tx/t
	assert_owner ".tx/t $A $A 700"
	sh_as $A $A sh -c 'echo staged >.tx/t/ns/x/k && mv .tx/t/.commit.pending .tx/t/.commit'
	assert_owner ".tx/t $A $A 500" "ns/x/k 0 0 666"
	[ "$(cat "$MNT/ns/x/k")" = staged ]
}

# --- chown and chmod are commits ---------------------------------------------------------

@test "chown and chmod of an agent are one commit each, shown in .events as attr ops, and a chmod to the same mode commits nothing" {
	t0=$(sh_probe_ts)
	chown "$A:$A" "$MNT/ns/a"
	chmod 0700 "$MNT/ns/a"
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 3)) ] || fail "chown + chmod took commits $t0..$t1, expected 2"
	[ "$(ops_at $((t0 + 1)))" = "$(attr_op a $A $A 0755)" ] || fail "$(ops_at $((t0 + 1)))"
	[ "$(ops_at $((t0 + 2)))" = "$(attr_op a $A $A 0700)" ] || fail "$(ops_at $((t0 + 2)))"
	assert_owner "ns/a $A $A 700"
	chmod 0700 "$MNT/ns/a"
	chown "$A:$A" "$MNT/ns/a"
	t2=$(sh_probe_ts)
	[ "$t2" -eq $((t1 + 1)) ] || fail "a chmod/chown to what ns/a has committed something: $t1..$t2"
	# The agent's own stream shows the change too.
	run jq -c --argjson t $((t0 + 2)) 'select(.commit_ts == $t) | .ops[0].value' "$MNT/.events/ns/a.jsonl"
	assert_output '{"uid":4001,"gid":4001,"mode":"0700"}'
}

# recovered REGEX: the newest recovery line of the daemon log matches REGEX after "recovery: ".
recovered() {
	local line
	line=$(grep -F 'statehoused: recovery:' "$LOG" | tail -n 1)
	[[ "$line" =~ ^statehoused:\ recovery:\ $1 ]] || fail "recovery line: '$line', expected: '$1'"
}

@test "an owner and mode survive a SIGKILL, a clean restart and a crash after a snapshot, and --verify agrees" {
	private_a
	chmod 0711 "$MNT/ns"
	sh_restart -o allow_other
	recovered 'no snapshot; replayed [1-9]'
	assert_owner "ns 0 0 711" "ns/a $A $A 700" "ns/a/k $A $A 600"
	run sh_errno_as $B $B read ns/a/k
	assert_output EACCES
	run sh_as $A $A cat ns/a/k
	assert_output secret

	# A clean unmount writes a snapshot: the next start has them from it alone.
	sh_remount -o allow_other,snapshot_interval=1
	recovered 'snapshot at commit [1-9][0-9]* loaded .*; replayed 0 events'
	assert_owner "ns 0 0 711" "ns/a $A $A 700" "ns/a/k $A $A 600"
	run sh_errno_as $B $B read ns/a/k
	assert_output EACCES

	# So does a periodic snapshot, before a crash.
	chgrp $G "$MNT/ns/a"
	chmod 0770 "$MNT/ns/a"
	ts=$(sh_probe_ts)
	sh_wait_until 20 test -f "$(printf '%s/snapshots/snap-%020d.bin' "$DATA" "$ts")" ||
		fail "no snapshot at commit $ts: $(ls "$DATA/snapshots")"
	sh_restart -o allow_other
	recovered "snapshot at commit $ts loaded .*; replayed 0 events"
	assert_owner "ns 0 0 711" "ns/a $A $G 770" "ns/a/k $A $G 660"

	# A change after the snapshot is replayed from the log on top of it.
	chmod 0751 "$MNT/ns"
	sh_kill9
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
	assert_output --regexp "verify: ok: [0-9]+ keys at commit [0-9]+ agree \(snapshot at commit $ts "
	sh_mount -o allow_other
	recovered "snapshot at commit $ts loaded .*; replayed 1 events"
	assert_owner "ns 0 0 751" "ns/a $A $G 770" "ns/a/k $A $G 660"
	run sh_as $B "$B,$G" cat ns/a/k
	assert_output secret
	run sh_errno_as $C $C read ns/a/k
	assert_output EACCES
	sh_umount
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
	assert_output --partial "verify: ok:"
}

# --- a private agent ---------------------------------------------------------------------

@test "the owner of a private agent reads, writes, lists and removes its keys and commits transactions in it" {
	private_a
	run sh_as $A $A cat ns/a/k
	assert_output secret
	sh_as $A $A sh -c 'echo mine >ns/a/k2'
	run sh_as $A $A ls ns/a
	assert_output "$(printf 'k\nk2')"
	sh_as $A $A rm ns/a/k
	sh_as $A $A mkdir .tx/t
	sh_as $A $A sh -c 'echo staged >.tx/t/ns/a/k3 && rm .tx/t/ns/a/k2'
	sh_as $A $A mv .tx/t/.commit.pending .tx/t/.commit
	run ls "$MNT/ns/a"
	assert_output k3
	[ "$(cat "$MNT/ns/a/k3")" = staged ]
	assert_owner "ns/a/k3 $A $A 600"
}

@test "another user gets EACCES for every way into a private agent's keys, live, past and in .events" {
	private_a
	mkdir -p "$MNT/ns/pub"
	echo v >"$MNT/ns/pub/k"
	t=$(sh_xattr commit_ts "$MNT/ns/a/k")
	t1=$(sh_probe_ts)
	for op in read stat unlink; do
		run sh_errno_as $B $B $op ns/a/k
		assert_output EACCES
	done
	run sh_errno_as $B $B write ns/a/k stolen
	assert_output EACCES
	run sh_errno_as $B $B write ns/a/new stolen
	assert_output EACCES
	run sh_errno_as $B $B rename ns/a/k ns/b/k
	assert_output EACCES
	run sh_as $B $B ls ns/a
	assert_failure
	assert_output --partial "cannot open directory 'ns/a': Permission denied"
	# The past and the agent's stream show its current owner, without write bits.
	assert_owner ".history/ns/a $A $A 500" ".at/$t/ns/a $A $A 500" ".at/$t/ns/a/k $A $A 400" \
		".events/ns/a.jsonl $A $A 400" ".events/ns/pub.jsonl 0 0 444"
	run sh_as $B $B ls .history/ns/a
	assert_failure
	assert_output --partial "cannot open directory '.history/ns/a': Permission denied"
	run sh_errno_as $B $B read ".at/$t/ns/a/k"
	assert_output EACCES
	run sh_errno_as $B $B read .events/ns/a.jsonl
	assert_output EACCES
	# Every agent's ops in one stream: the daemon user's only.
	assert_owner ".events/all.jsonl 0 0 400" ".events/since/1/all.jsonl 0 0 400"
	run sh_errno_as $B $B read .events/all.jsonl
	assert_output EACCES
	# .follow streams the same (timeout: a stream that opened would wait for more).
	assert_owner ".follow/ns/a.jsonl $A $A 400" ".follow/all.jsonl 0 0 400"
	run sh_as $B $B timeout 10 cat .follow/ns/a.jsonl .follow/all.jsonl
	assert_failure 1
	assert_output "$(printf 'cat: %s: Permission denied\n' .follow/ns/a.jsonl .follow/all.jsonl)"
	run sh_as $B $B jq -c '.ops[0].value' .events/ns/pub.jsonl
	assert_output '"v\n"'
	# Nothing of it reached the store.
	t2=$(sh_probe_ts)
	[ "$t2" -eq $((t1 + 1)) ] || fail "B's attempts committed something: $t1..$t2"
	run ls "$MNT/ns/a"
	assert_output k
	[ "$(cat "$MNT/ns/a/k")" = secret ]
}

# Owner and mode belong to the directory, as on any file system: renaming it must not leave
# its keys to whatever the new place would give an agent without a record.
@test "renaming a private agent takes its owner and mode along, and another user still gets EACCES under the new name" {
	private_a
	chmod 0777 "$MNT/ns"
	sh_as $A $A mv -T ns/a ns/c
	run sh_errno_as $B $B read ns/c/k
	assert_output EACCES
	run sh_errno_as $B $B write ns/c/k stolen
	assert_output EACCES
	assert_owner "ns/c $A $A 700" "ns/c/k $A $A 600" "ns/a 0 0 777"
	[ "$(cat "$MNT/ns/c/k")" = secret ]
}

@test "another user stages nothing into a private agent from its own transaction and cannot list, stage into, commit or remove the owner's" {
	private_a
	sh_as $B $B mkdir .tx/b
	run sh_errno_as $B $B read .tx/b/ns/a/k
	assert_output EACCES
	run sh_errno_as $B $B write .tx/b/ns/a/k stolen
	assert_output EACCES
	run sh_errno_as $B $B unlink .tx/b/ns/a/k
	assert_output EACCES
	sh_jq '.ops == 0 and .state == "open"' "$MNT/.tx/b/.status"

	sh_as $A $A mkdir .tx/t
	sh_as $A $A sh -c 'echo from-a >.tx/t/ns/a/k'
	run sh_as $B $B ls .tx/t
	assert_failure
	assert_output --partial "cannot open directory '.tx/t': Permission denied"
	run sh_errno_as $B $B read .tx/t/.status
	assert_output EACCES
	run sh_errno_as $B $B write .tx/t/ns/x/k from-b
	assert_output EACCES
	run sh_errno_as $B $B rename .tx/t/.commit.pending .tx/t/.commit
	assert_output EACCES
	# .tx is sticky: only the owner (or root) removes or renames an entry.
	run sh_errno_as $B $B rmdir .tx/t
	assert_output EPERM
	run sh_errno_as $B $B rename .tx/t .tx/u
	assert_output EPERM
	# The owner's transaction is untouched: it commits whole.
	sh_jq '.state == "open" and .ops == 1' "$MNT/.tx/t/.status"
	sh_as $A $A mv .tx/t/.commit.pending .tx/t/.commit
	[ "$(cat "$MNT/ns/a/k")" = from-a ]
	[ "$(sh_xattr version "$MNT/ns/a/k")" -eq 2 ]
	run sh_errno stat "$MNT/ns/x/k"
	assert_output ENOENT
}

# --- groups ------------------------------------------------------------------------------

@test "a member of an agent's group writes to its 0770 agent, and a user outside the group gets EACCES" {
	private_a
	chgrp $G "$MNT/ns/a"
	chmod 0770 "$MNT/ns/a"
	assert_owner "ns/a $A $G 770" "ns/a/k $A $G 660"
	sh_as $B "$B,$G" sh -c 'echo from-b >ns/a/k'
	run sh_errno_as $C $C write ns/a/k from-c
	assert_output EACCES
	run sh_errno_as $C $C read ns/a/k
	assert_output EACCES
	# The primary group counts as well.
	sh_as $C $G sh -c 'echo from-c >ns/a/k2'
	[ "$(cat "$MNT/ns/a/k")" = from-b ]
	[ "$(cat "$MNT/ns/a/k2")" = from-c ]
}

# --- who may change owners and modes -----------------------------------------------------

@test "only the owner may chmod, only root may chown, and the owner may chgrp to a group of its own" {
	private_a
	t0=$(sh_probe_ts)
	run sh_errno_as $B $B chmod ns/a 0777
	assert_output EPERM
	run sh_errno_as $B $B chmod ns 0777
	assert_output EPERM
	run sh_errno_as $A $A chown ns/a $B:$B
	assert_output EPERM
	run sh_errno_as $A $A chown ns/a -1:$G
	assert_output EPERM
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 1)) ] || fail "a refused chmod or chown committed: $t0..$t1"
	assert_owner "ns 0 0 755" "ns/a $A $A 700"
	sh_as $A $A chmod 0750 ns/a
	sh_as $A "$A,$G" chgrp $G ns/a
	t2=$(sh_probe_ts)
	[ "$t2" -eq $((t1 + 3)) ] || fail "chmod + chgrp took commits $t1..$t2, expected 2"
	[ "$(ops_at $((t1 + 2)))" = "$(attr_op a $A $G 0750)" ] || fail "$(ops_at $((t1 + 2)))"
	assert_owner "ns/a $A $G 750"
}

@test "a key's owner chmods it (a commit), chown of a key or chmod of a key directory to anything but what it has is EPERM" {
	private_a
	mkdir -p "$MNT/ns/a/d"
	echo w >"$MNT/ns/a/d/k"
	t0=$(sh_probe_ts)
	run sh_errno chown "$MNT/ns/a/k" 0:0
	assert_output EPERM
	run sh_errno chmod "$MNT/ns/a/d" 0755
	assert_output EPERM
	run sh_errno_as $B $B chmod ns/a/k 0666
	assert_output EACCES # no way into the private agent
	sh_as $A $A chmod 0600 ns/a/k # what it has: nothing committed
	sh_as $A $A chgrp $A ns/a/d/k
	# cp -p sets the copy's owner and mode to what it already has.
	in_mnt cp -p ns/a/k ns/a/copy
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 2)) ] || fail "expected one commit (cp -p) in $t0..$t1"
	[ "$(cat "$MNT/ns/a/copy")" = secret ]
	assert_owner "ns/a/k $A $A 600" "ns/a/d $A $A 700" "ns/a/d/k $A $A 600"
	sh_as $A $A chmod 0400 ns/a/d/k
	t2=$(sh_probe_ts)
	[ "$t2" -eq $((t1 + 2)) ] || fail "expected one commit (chmod) in $t1..$t2"
	[ "$(ops_at $((t1 + 1)))" = '[{"ns":"ns","agent":"a","key":"d/k","op":"attr","value":{"mode":"0400"}}]' ] ||
		fail "$(ops_at $((t1 + 1)))"
	assert_owner "ns/a/d/k $A $A 400"
}

@test "chmod and chown in .at and .history are EROFS, to the mode shown accepted, and of a transaction directory EPERM" {
	private_a
	t=$(sh_xattr commit_ts "$MNT/ns/a/k")
	run sh_errno chmod "$MNT/.at/$t/ns/a" 0700
	assert_output EROFS
	run sh_errno chown "$MNT/.at/$t/ns/a/k" "$B:$B"
	assert_output EROFS
	run sh_errno chmod "$MNT/.history/ns/a" 0700
	assert_output EROFS
	chmod 0500 "$MNT/.at/$t/ns/a"
	sh_as $A $A mkdir .tx/t
	run sh_errno_as $A $A chmod .tx/t 0755
	assert_output EPERM
	run sh_errno chown "$MNT/.tx/t" "$B:$B"
	assert_output EPERM
	assert_owner ".tx/t $A $A 700" ".at/$t/ns/a $A $A 500" "ns/a $A $A 700"
}

# --- inheritance -------------------------------------------------------------------------

@test "chown and chmod of a namespace change its agents without a record of their own and not those with one" {
	mkdir -p "$MNT/ns/free" "$MNT/ns/own"
	echo f >"$MNT/ns/free/k"
	echo o >"$MNT/ns/own/k"
	chown "$A:$A" "$MNT/ns/own"
	chown "$B:$G" "$MNT/ns"
	chmod 0750 "$MNT/ns"
	assert_owner "ns $B $G 750" "ns/free $B $G 750" "ns/free/k $B $G 640" "ns/never $B $G 750" \
		"ns/own $A $A 755" "ns/own/k $A $A 644"
	sh_as $B $B sh -c 'echo by-b >ns/free/k'
	run sh_errno_as $C $G write ns/free/k by-c
	assert_output EACCES
	# Without search permission on the namespace, A does not reach even its own agent.
	run sh_errno_as $A $A read ns/own/k
	assert_output EACCES
	[ "$(cat "$MNT/ns/free/k")" = by-b ]
}

@test "an agent without a record in a sticky namespace shows no group or other write, one with a record keeps its mode" {
	mkdir -p "$MNT/ns/free" "$MNT/ns/own"
	chmod 0777 "$MNT/ns/own"
	chmod 0777 "$MNT/ns"
	assert_owner "ns/free 0 0 777"
	chmod 1777 "$MNT/ns"
	assert_owner "ns 0 0 1777" "ns/free 0 0 755" "ns/own 0 0 777"
	run sh_errno_as $B $B write ns/free/k by-b
	assert_output EACCES
	sh_as $B $B sh -c 'echo by-b >ns/own/k'
	assert_owner "ns/own/k 0 0 666"
}

# --- rmdir -------------------------------------------------------------------------------

@test "rmdir of an empty owned agent or namespace clears its record in one commit, and of a namespace holding an owned agent is ENOTEMPTY" {
	echo v >"$MNT/ns/full/k"
	chown "$A:$A" "$MNT/ns/a" "$MNT/ns/full"
	chmod 0700 "$MNT/ns/a"
	run ls "$MNT/ns"
	assert_output "$(printf 'a\nfull')"
	t0=$(sh_probe_ts)
	rmdir "$MNT/ns/a"
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 2)) ] || fail "rmdir took commits $t0..$t1, expected 1"
	[ "$(ops_at $((t0 + 1)))" = '[{"ns":"ns","agent":"a","op":"attr","value":null}]' ] ||
		fail "$(ops_at $((t0 + 1)))"
	assert_owner "ns/a 0 0 755"
	run ls "$MNT/ns"
	assert_output full
	run sh_errno rmdir "$MNT/ns/full"
	assert_output ENOTEMPTY
	# An empty owned agent keeps its namespace from being empty.
	rm "$MNT/ns/full/k"
	run sh_errno rmdir "$MNT/ns"
	assert_output ENOTEMPTY
	assert_owner "ns/full $A $A 755"
	# Its owner removes it too (it may write the namespace).
	chmod 0777 "$MNT/ns"
	sh_as $A $A rmdir ns/full
	assert_owner "ns/full 0 0 777"
	t0=$(sh_probe_ts)
	rmdir "$MNT/ns"
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 2)) ] || fail "rmdir took commits $t0..$t1, expected 1"
	[ "$(ops_at $((t0 + 1)))" = '[{"ns":"ns","op":"attr","value":null}]' ] ||
		fail "$(ops_at $((t0 + 1)))"
	assert_owner "ns 0 0 755" "ns/full 0 0 755"
}

# --- caches and root ---------------------------------------------------------------------

@test "a user who read a public agent's key gets EACCES on its next read once the owner makes the agent private" {
	mkdir -p "$MNT/ns/a" "$MNT/ns/b"
	echo v >"$MNT/ns/a/k"
	echo w >"$MNT/ns/b/k"
	chown "$A:$A" "$MNT/ns/a"
	run sh_as $B $B cat ns/a/k ns/b/k
	assert_output "$(printf 'v\nw')"
	# 0711: B may still pass through the agent; the key's own (cached) mode must refuse.
	sh_as $A $A chmod 0711 ns/a
	run sh_errno_as $B $B read ns/a/k
	assert_output EACCES
	assert_owner "ns/a/k $A $A 600"
	sh_as $A $A chmod 0700 ns/a
	run sh_errno_as $B $B stat ns/a/k
	assert_output EACCES
	sh_as $A $A chmod 0755 ns/a
	run sh_as $B $B cat ns/a/k
	assert_output v
	# A namespace's mode reaches the cached keys of an agent that inherits it.
	chmod 0711 "$MNT/ns"
	run sh_errno_as $B $B read ns/b/k
	assert_output EACCES
	run sh_as $B $B cat ns/a/k
	assert_output v
}

@test "root reads, writes, lists and removes in another user's private agent and transaction" {
	private_a
	sh_as $A $A mkdir .tx/t
	sh_as $A $A sh -c 'echo staged >.tx/t/ns/a/s'
	[ "$(cat "$MNT/ns/a/k")" = secret ]
	echo by-root >"$MNT/ns/a/r"
	run ls "$MNT/ns/a"
	assert_output "$(printf 'k\nr')"
	rm "$MNT/ns/a/k"
	run ls "$MNT/.tx/t/ns/a"
	assert_output "$(printf 'k\ns')"
	[ "$(cat "$MNT/.tx/t/ns/a/s")" = staged ]
	echo root-staged >"$MNT/.tx/t/ns/a/t"
	[ "$(head -n 1 "$MNT/.events/ns/a.jsonl" | jq -r '.ops[0].value')" = secret ]
	[ "$(cat "$MNT/.history/ns/a/k/1")" = secret ]
	sh_commit "$MNT/.tx/t"
	run ls "$MNT/ns/a"
	assert_output "$(printf 'r\ns\nt')"
	rmdir "$MNT/.tx/t"
}
