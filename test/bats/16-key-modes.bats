#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A key's own mode: chmod of a live key is a commit ("op":"attr" with the key in .events);
# the mode stays with the key through overwrites, goes with it through a rename or an
# exchange, and goes away with a delete; the kernel checks every access against it.

U=4011 # a user other than the agent's owner

setup() {
	load helper
	sh_default_setup -o allow_other
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

mode() {
	stat -c %a "$1"
}

@test "chmod of a key is one commit shown in .events, and the mode survives a clean restart, a SIGKILL and --verify" {
	echo v >"$A/k"
	[ "$(mode "$A/k")" = 644 ]
	t0=$(sh_probe_ts)
	chmod 0640 "$A/k"
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 2)) ] || fail "chmod took commits $t0..$t1, expected 1"
	run jq -c --argjson t $((t0 + 1)) 'select(.commit_ts == $t) | .ops' "$MNT/.events/ns/a.jsonl"
	assert_output '[{"ns":"ns","agent":"a","key":"k","op":"attr","value":{"mode":"0640"}}]'
	[ "$(sh_xattr version "$A/k")" = 1 ] # the value's version is the value's
	sh_remount
	[ "$(mode "$A/k")" = 640 ]
	chmod 0604 "$A/k"
	sh_restart # replayed from the log after the snapshot of the clean stop
	[ "$(mode "$A/k")" = 604 ]
	[ "$(cat "$A/k")" = v ]
	sh_umount
	run "$STATEHOUSED" --verify "$DATA"
	assert_success
}

@test "a key's mode stays through an overwrite, goes with a rename and an exchange, and goes away with a delete" {
	echo one >"$A/k"
	echo two >"$A/other"
	chmod 0600 "$A/k"
	echo three >"$A/k"
	[ "$(mode "$A/k")" = 600 ]
	mv "$A/k" "$A/moved"
	[ "$(mode "$A/moved")" = 600 ]
	[ "$(cat "$A/moved")" = three ]
	run sh_errno exchange "$A/moved" "$A/other"
	assert_output OK
	[ "$(mode "$A/other")" = 600 ]
	[ "$(cat "$A/other")" = three ]
	[ "$(mode "$A/moved")" = 644 ]
	mkdir "$A/dir"
	mv "$A/other" "$A/dir/k"
	mv "$A/dir" "$A/dir2"
	[ "$(mode "$A/dir2/k")" = 600 ]
	rm "$A/dir2/k"
	echo again >"$A/dir2/k"
	[ "$(mode "$A/dir2/k")" = 644 ]
	sh_remount
	[ "$(mode "$A/dir2/k")" = 644 ]
	[ "$(mode "$A/moved")" = 644 ]
}

@test "the kernel checks a key's own mode: 0600 keeps another user out, +x runs it, the past shows it without write bits" {
	echo secret >"$A/k"
	run sh_as $U $U cat ns/a/k
	assert_output secret
	chmod 0600 "$A/k"
	run sh_errno_as $U $U read ns/a/k
	assert_output EACCES
	run sh_errno_as $U $U chmod ns/a/k 0666
	assert_output EPERM # only the owner (or root) changes a mode
	printf '#!/bin/sh\necho ran\n' >"$A/run.sh"
	run "$A/run.sh"
	assert_failure 126 # no x bit: not even root may run it
	chmod 0755 "$A/run.sh"
	run "$A/run.sh"
	assert_output ran
	t=$(sh_xattr commit_ts "$A/k")
	[ "$(mode "$MNT/.at/$t/ns/a/k")" = 400 ]
	[ "$(mode "$MNT/.at/$(sh_probe_ts)/ns/a/run.sh")" = 555 ]
}

@test "chmod of a file just created and still open commits it, and the writer's bytes and size follow (mkstemp)" {
	run "$SH_PYTHON" - "$A/tmp" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.fchmod(fd, 0o640)
os.write(fd, b"abc")
print(os.fstat(fd).st_size, oct(os.fstat(fd).st_mode & 0o777))
os.fchmod(fd, 0o600)
os.write(fd, b"def")
print(os.fstat(fd).st_size)
os.close(fd)
PY
	assert_success
	assert_output $'3 0o640\n6'
	[ "$(cat "$A/tmp")" = abcdef ]
	[ "$(mode "$A/tmp")" = 600 ]
}

@test "chmod of a key staged in a transaction or of an explicit directory is EPERM and changes nothing" {
	echo v >"$A/k"
	mkdir "$A/d"
	mkdir "$MNT/.tx/t"
	echo staged >"$MNT/.tx/t/ns/a/k"
	t0=$(sh_probe_ts)
	run sh_errno chmod "$MNT/.tx/t/ns/a/k" 0600
	assert_output EPERM
	run sh_errno chmod "$A/d" 0700
	assert_output EPERM
	t1=$(sh_probe_ts)
	[ "$t1" -eq $((t0 + 1)) ] || fail "a refused chmod committed: $t0..$t1"
	[ "$(mode "$A/k")" = 644 ]
	[ "$(mode "$A/d")" = 755 ]
}

@test "a new key takes its agent's mode whatever the umask, plus the execute bits its create asks for, in its first commit" {
	(umask 077 && echo private >"$A/p")
	[ "$(mode "$A/p")" = 644 ]
	run jq -c 'select(.ops[0].key == "p") | [.ops[].op]' "$MNT/.events/ns/a.jsonl"
	assert_output '["put"]'
	run "$SH_PYTHON" - "$A/x" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o775)
os.write(fd, b"#!/bin/sh\necho x\n")
print(oct(os.stat(sys.argv[1]).st_mode & 0o777)) # created, not committed yet
os.close(fd)
PY
	assert_output 0o755
	sh_xattr version "$A/x" # waits for the commit of its release
	run jq -c 'select(.ops[0].key == "x") | [.ops[].op]' "$MNT/.events/ns/a.jsonl"
	assert_output '["put","attr"]'
	chmod 0700 "$A"
	(umask 0 && echo y >"$A/y") # a private agent's keys are private
	[ "$(mode "$A/y")" = 600 ]
	install -m 0777 /dev/null "$A/z"
	[ "$(mode "$A/z")" = 777 ] # install's own chmod
	sh_remount
	[ "$(mode "$A/x")" = 755 ] # its own
	[ "$(mode "$A/p")" = 600 ] # its agent's, now 0700
	run "$A/x"
	assert_output x
}
