#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# What a commit checks besides its writes: the isolation level (.tx/NAME/.isolation,
# -o isolation=), where serializable fails write skew and phantoms that snapshot lets
# through, and preconditions (.tx/NAME/.expect/<ns>/<agent>/<key>), also through
# statehousectl put/rm --if-*.  See statehouse(5) "ISOLATION" and "PRECONDITIONS".

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/a"
	mkdir -p "$A"
	CTL="$STATEHOUSECTL"
}

teardown() {
	sh_default_teardown
}

# begin NAME [LEVEL]: mkdir .tx/NAME and set its isolation; prints nothing.
begin() {
	mkdir "$MNT/.tx/$1"
	if [ -n "${2:-}" ]; then echo "$2" >"$MNT/.tx/$1/.isolation"; fi
}

# The on-call schedule: alice and bob are on call; t1 and t2 each read both, see the
# other on call, and take themselves off.  Each would be fine alone; together nobody is
# left on call (write skew).  Prints the exit status of each commit.
write_skew() {
	echo on >"$A/alice"
	echo on >"$A/bob"
	begin t1 "$1"
	begin t2 "$1"
	cat "$MNT/.tx/t1/ns/a/alice" "$MNT/.tx/t1/ns/a/bob" >/dev/null
	cat "$MNT/.tx/t2/ns/a/alice" "$MNT/.tx/t2/ns/a/bob" >/dev/null
	echo off >"$MNT/.tx/t1/ns/a/alice"
	echo off >"$MNT/.tx/t2/ns/a/bob"
	sh_errno rename "$MNT/.tx/t1/.commit.pending" "$MNT/.tx/t1/.commit"
	sh_errno rename "$MNT/.tx/t2/.commit.pending" "$MNT/.tx/t2/.commit"
}

# --- isolation ------------------------------------------------------------------------

@test "snapshot isolation (the default) lets the write-skew schedule commit both: nobody stays on call" {
	mkdir "$MNT/.tx/probe"
	run cat "$MNT/.tx/probe/.isolation"
	assert_output snapshot
	rmdir "$MNT/.tx/probe"
	run write_skew ""
	assert_output "$(printf 'OK\nOK')"
	run cat "$A/alice" "$A/bob"
	assert_output "$(printf 'off\noff')"
}

@test "serializable fails the write-skew schedule's second commit with ESTALE, naming the key it read" {
	run write_skew serializable
	assert_output "$(printf 'OK\nESTALE')"
	run cat "$A/alice" "$A/bob"
	assert_output "$(printf 'off\non')"
	sh_jq '.state == "conflict" and .error == "ESTALE" and .key == "ns/a/alice" and
		.conflict == "read" and .isolation == "serializable"' "$MNT/.tx/t2/.status"
	sh_jq '.state == "committed" and .isolation == "serializable"' "$MNT/.tx/t1/.status"
}

@test "-o isolation=serializable is the mount's default; a transaction may still choose snapshot" {
	sh_remount -o isolation=serializable
	begin t0
	run cat "$MNT/.tx/t0/.isolation"
	assert_output serializable
	rmdir "$MNT/.tx/t0"
	run write_skew ""
	assert_output "$(printf 'OK\nESTALE')"
	rm -f "$A/alice" "$A/bob"
	rmdir "$MNT/.tx/t1" "$MNT/.tx/t2"
	run write_skew snapshot
	assert_output "$(printf 'OK\nOK')"
}

@test "-o isolation= takes only snapshot or serializable" {
	sh_umount
	run "$STATEHOUSED" "$DATA" "$MNT" -f -o isolation=repeatable
	assert_failure 2
	assert_output --partial "isolation must be snapshot or serializable, not 'repeatable'"
	sh_mount
}

@test "a phantom: a key added under a directory a serializable transaction listed fails its commit" {
	mkdir -p "$A/jobs"
	echo 1 >"$A/jobs/1"
	for level in snapshot serializable; do
		begin "r-$level" "$level"
		run ls "$MNT/.tx/r-$level/ns/a/jobs"
		assert_output 1
		echo 1 >"$MNT/.tx/r-$level/ns/a/count-$level" # what it concluded from the listing
	done
	# another transaction adds a job
	begin w
	echo 2 >"$MNT/.tx/w/ns/a/jobs/2"
	sh_commit "$MNT/.tx/w"
	run sh_errno rename "$MNT/.tx/r-snapshot/.commit.pending" "$MNT/.tx/r-snapshot/.commit"
	assert_output OK
	run sh_errno rename "$MNT/.tx/r-serializable/.commit.pending" "$MNT/.tx/r-serializable/.commit"
	assert_output ESTALE
	sh_jq '.key == "ns/a/jobs/2" and .conflict == "read"' "$MNT/.tx/r-serializable/.status"
	run cat "$A/count-snapshot"
	assert_output 1
	run sh_errno stat "$A/count-serializable"
	assert_output ENOENT
}

@test "serializable: a key looked for and not found fails the commit once another transaction makes it" {
	begin t serializable
	run sh_errno stat "$MNT/.tx/t/ns/a/lock"
	assert_output ENOENT
	echo me >"$MNT/.tx/t/ns/a/holder"
	echo other >"$A/lock"
	run sh_errno rename "$MNT/.tx/t/.commit.pending" "$MNT/.tx/t/.commit"
	assert_output ESTALE
	sh_jq '.key == "ns/a/lock"' "$MNT/.tx/t/.status"
	run sh_errno stat "$A/holder"
	assert_output ENOENT
}

@test "serializable: reads nobody changed, its own writes read back and directories it made let the commit through" {
	echo 1 >"$A/x"
	echo 1 >"$A/w"
	begin t serializable
	cat "$MNT/.tx/t/ns/a/x" >/dev/null
	echo mine >"$MNT/.tx/t/ns/a/y"
	echo mine >"$MNT/.tx/t/ns/a/w"
	mkdir "$MNT/.tx/t/ns/a/d"
	run cat "$MNT/.tx/t/ns/a/y" "$MNT/.tx/t/ns/a/w"
	assert_output "$(printf 'mine\nmine')"
	# commits elsewhere: another agent, another key of this one, below the new directory
	mkdir -p "$MNT/ns/b"
	echo 1 >"$MNT/ns/b/k"
	echo 1 >"$A/unread"
	mkdir -p "$A/d"
	echo 1 >"$A/d/k"
	run sh_errno rename "$MNT/.tx/t/.commit.pending" "$MNT/.tx/t/.commit"
	assert_output OK
	run cat "$A/y" "$A/w"
	assert_output "$(printf 'mine\nmine')"
}

@test ".isolation: EBUSY after the first op (a staged write or a read), EINVAL for another word, EROFS once committed" {
	echo v >"$A/k"
	begin t
	echo serializable >"$MNT/.tx/t/.isolation"
	echo snapshot >"$MNT/.tx/t/.isolation"
	run cat "$MNT/.tx/t/.isolation"
	assert_output snapshot
	run sh_errno write "$MNT/.tx/t/.isolation" repeatable
	assert_output EINVAL
	run sh_errno write "$MNT/.tx/t/.isolation" "serializable "
	assert_output EINVAL
	# a listing of the view is a read: the first op
	ls "$MNT/.tx/t/ns" >/dev/null
	run sh_errno write "$MNT/.tx/t/.isolation" serializable
	assert_output EBUSY
	begin u
	cat "$MNT/.tx/u/ns/a/k" >/dev/null
	run sh_errno write "$MNT/.tx/u/.isolation" serializable
	assert_output EBUSY
	begin w
	echo x >"$MNT/.tx/w/ns/a/new"
	run sh_errno write "$MNT/.tx/w/.isolation" serializable
	assert_output EBUSY
	run cat "$MNT/.tx/w/.isolation"
	assert_output snapshot
	sh_commit "$MNT/.tx/w"
	run sh_errno write "$MNT/.tx/w/.isolation" serializable
	assert_output EROFS
	run sh_errno unlink "$MNT/.tx/w/.isolation"
	assert_output EROFS
}

# --- preconditions ----------------------------------------------------------------------

# try NAME EXPECT_PATH CONTENT: a transaction that expects CONTENT of EXPECT_PATH (below
# .expect) and writes ns/a/out=NAME; prints the commit's errno name.
try() {
	begin "$1"
	printf '%s\n' "$3" >"$MNT/.tx/$1/.expect/$2"
	echo "$1" >"$MNT/.tx/$1/ns/a/out"
	sh_errno rename "$MNT/.tx/$1/.commit.pending" "$MNT/.tx/$1/.commit"
}

@test "each precondition form, true and false, in a one-key transaction" {
	echo 1 >"$A/v2"
	echo 2 >"$A/v2"
	echo 1 >"$A/gone"
	rm "$A/gone"
	n=0
	while read -r key content want; do
		n=$((n + 1))
		ts0="$(sh_probe_ts)"
		run try "c$n" "ns/a/$key" "$content"
		assert_output "$want"
		if [ "$want" = OK ]; then
			run cat "$A/out"
			assert_output "c$n"
		else
			sh_jq ".state == \"conflict\" and .error == \"ESTALE\" and .key == \"ns/a/$key\" and
				.conflict == \"precondition\"" "$MNT/.tx/c$n/.status"
			[ "$(sh_probe_ts)" -eq $((ts0 + 1)) ] # nothing committed in between
		fi
	done <<-'EOF'
		v2 2 OK
		v2 1 ESTALE
		v2 3 ESTALE
		gone 2 ESTALE
		never 0 OK
		never absent OK
		gone absent OK
		v2 0 ESTALE
		v2 absent ESTALE
		v2 present OK
		gone present ESTALE
		never present ESTALE
	EOF
}

@test "preconditions on several keys: all true commits, one false fails naming it and applies nothing" {
	mkdir -p "$MNT/ns/b"
	echo 1 >"$A/x"
	echo 1 >"$MNT/ns/b/y"
	T="$MNT/.tx/ok"
	mkdir "$T"
	mkdir -p "$T/.expect/ns/b/new/dir"
	echo 1 >"$T/.expect/ns/a/x"
	echo present >"$T/.expect/ns/b/y"
	echo absent >"$T/.expect/ns/b/new/dir/z"
	echo 2 >"$T/ns/a/x"
	mkdir -p "$T/ns/b/new/dir"
	echo z >"$T/ns/b/new/dir/z"
	sh_commit "$T"
	run cat "$A/x" "$MNT/ns/b/new/dir/z"
	assert_output "$(printf '2\nz')"
	ts0="$(sh_probe_ts)"
	T="$MNT/.tx/bad"
	mkdir "$T"
	echo 2 >"$T/.expect/ns/a/x"
	echo 1 >"$T/.expect/ns/b/y"
	echo absent >"$T/.expect/ns/b/new/dir/z" # no longer true
	echo 3 >"$T/ns/a/x"
	rm "$T/ns/b/y"
	run sh_errno rename "$T/.commit.pending" "$T/.commit"
	assert_output ESTALE
	sh_jq '.key == "ns/b/new/dir/z" and .conflict == "precondition"' "$T/.status"
	[ "$(sh_probe_ts)" -eq $((ts0 + 1)) ]
	run cat "$A/x" "$MNT/ns/b/y"
	assert_output "$(printf '2\n1')"
}

@test "a precondition is checked at commit, against what is committed then" {
	begin t
	echo 1 >"$MNT/.tx/t/.expect/ns/a/late"
	echo v >"$MNT/.tx/t/ns/a/other"
	echo made >"$A/late" # version 1, after the transaction began
	sh_commit "$MNT/.tx/t"
	run cat "$A/other"
	assert_output v
}

@test "bad content in an .expect file fails write() with EINVAL and sets nothing" {
	begin t
	for bad in yes -1 ' 7' '7 7' 99999999999999999999 'present!' $'1\n2'; do
		run sh_errno write "$MNT/.tx/t/.expect/ns/a/k" "$bad"
		assert_output EINVAL
	done
	run ls -A "$MNT/.tx/t/.expect/ns/a"
	assert_output ''
	run sh_errno stat "$MNT/.tx/t/.expect/ns/a/k"
	assert_output ENOENT
	# the start of a word, never finished: its close fails (EINVAL) and sets nothing
	run sh_errno write "$MNT/.tx/t/.expect/ns/a/k" pres
	assert_output EINVAL
	run sh_errno stat "$MNT/.tx/t/.expect/ns/a/k"
	assert_output ENOENT
	# a good one, then a bad write over it: the good one stays
	echo 4 >"$MNT/.tx/t/.expect/ns/a/k"
	run sh_errno write "$MNT/.tx/t/.expect/ns/a/k" nope
	assert_output EINVAL
	run cat "$MNT/.tx/t/.expect/ns/a/k"
	assert_output 4
	# no key there: above an agent, or a reserved name
	run sh_errno write "$MNT/.tx/t/.expect/ns/k" 1
	assert_output EISDIR # an agent, as in the live tree
	run sh_errno write "$MNT/.tx/t/.expect/.ns/a/k" 1
	assert_output EINVAL
	long="$MNT/.tx/t/.expect/ns/a/$(sh_longname 255)/$(sh_longname 255)/$(sh_longname 255)/$(sh_longname 255)"
	mkdir -p "$long"
	run sh_errno write "$long/$(sh_longname 255)" 1
	assert_output ENAMETOOLONG
}

@test ".expect files read back, list, and go with rm; mkdir makes room for keys in new directories" {
	mkdir -p "$A/d"
	echo v >"$A/d/k"
	begin t
	echo 0 >"$MNT/.tx/t/.expect/ns/a/n"
	echo present >"$MNT/.tx/t/.expect/ns/a/d/k"
	run sh_errno write "$MNT/.tx/t/.expect/ns/a/new/k" 1
	assert_output ENOENT # no directory new: make it first
	mkdir -p "$MNT/.tx/t/.expect/ns/a/new"
	echo 7 >"$MNT/.tx/t/.expect/ns/a/new/k"
	run cat "$MNT/.tx/t/.expect/ns/a/n" "$MNT/.tx/t/.expect/ns/a/d/k" "$MNT/.tx/t/.expect/ns/a/new/k"
	assert_output "$(printf 'absent\npresent\n7')"
	run find "$MNT/.tx/t/.expect" -type f
	assert_output "$(printf '%s\n' "$MNT/.tx/t/.expect/ns/a/d/k" "$MNT/.tx/t/.expect/ns/a/n" "$MNT/.tx/t/.expect/ns/a/new/k" | sort)"
	[ "$(stat -c '%A %s' "$MNT/.tx/t/.expect/ns/a/new/k")" = '-rw------- 2' ]
	rm -r "$MNT/.tx/t/.expect/ns/a/new"
	rm "$MNT/.tx/t/.expect/ns/a/n"
	run find "$MNT/.tx/t/.expect" -type f
	assert_output "$MNT/.tx/t/.expect/ns/a/d/k"
	run sh_errno unlink "$MNT/.tx/t/.expect/ns/a/n"
	assert_output ENOENT
	run sh_errno unlink "$MNT/.tx/t/.expect/ns/a"
	assert_output EISDIR
	run sh_errno rmdir "$MNT/.tx/t/.expect"
	assert_output EBUSY
	run sh_errno unlink "$MNT/.tx/t/.expect"
	assert_output EISDIR
	run sh_errno write "$MNT/.tx/t/.expect" x
	assert_output EISDIR
	run sh_errno rename "$MNT/.tx/t/.commit.pending" "$MNT/.tx/t/.expect"
	assert_output EISDIR
	# a transaction of preconditions only commits empty when they hold
	sh_commit "$MNT/.tx/t"
	sh_jq '.ops == 0' "$MNT/.tx/t/.commit"
	run sh_errno write "$MNT/.tx/t/.expect/ns/a/d/k" 1
	assert_output EROFS
}

# --- statehousectl --------------------------------------------------------------------

@test "statehousectl put --if-version/--if-absent and rm --if-version: 0 when it holds, 4 when it does not" {
	run "$CTL" -m "$MNT" --ns ns put a k one --if-absent
	assert_success
	run "$CTL" -m "$MNT" --ns ns put a k two --if-absent
	assert_failure 4
	assert_output "statehousectl: cannot write key 'k' of agent 'a': precondition failed: it exists (--if-absent)"
	run "$CTL" -m "$MNT" --ns ns put a k two --if-version 2
	assert_failure 4
	assert_output "statehousectl: cannot write key 'k' of agent 'a': precondition failed: it is at version 1, not version 2"
	run "$CTL" -m "$MNT" --ns ns put --if-version 1 a k two
	assert_success
	run cat "$A/k"
	assert_output two
	[ "$(sh_xattr version "$A/k")" -eq 2 ]
	run "$CTL" -m "$MNT" --ns ns put a deep/er/k v --if-version 0
	assert_success
	run cat "$A/deep/er/k"
	assert_output v
	run "$CTL" -m "$MNT" --ns ns rm a k --if-version 1
	assert_failure 4
	assert_output --partial 'precondition failed: it is at version 2, not version 1'
	run "$CTL" -m "$MNT" --ns ns rm a k --if-version 2
	assert_success
	run sh_errno stat "$A/k"
	assert_output ENOENT
	run "$CTL" -m "$MNT" --ns ns rm a k --if-version 2
	assert_failure 4
	assert_output --partial 'precondition failed: it does not exist, not version 2'
	echo stdin | "$CTL" -m "$MNT" --ns ns put a k --if-absent
	run cat "$A/k"
	assert_output stdin
	# every conditional write was a transaction of its own, gone after it
	run ls -A "$MNT/.tx"
	assert_output ''
}

@test "statehousectl put and rm --if-*: usage errors exit 2" {
	run "$CTL" -m "$MNT" put a k v --if-version x
	assert_failure 2
	assert_output --partial "malformed --if-version 'x'"
	run "$CTL" -m "$MNT" put a k v --if-version 1 --if-absent
	assert_failure 2
	assert_output --partial 'give one of --if-version and --if-absent'
	run "$CTL" -m "$MNT" rm a k --if-version 0
	assert_failure 2
	assert_output --partial '1 or more'
	run "$CTL" -m "$MNT" rm a k --if-absent
	assert_failure 2
	assert_output --partial "unknown option '--if-absent'"
}

@test "the README's isolation and precondition lines run as written" {
	# The indented lines after "Choose and check like this:" in README.md.
	mapfile -t cmds < <(awk '/Choose and check like this:$/ { on = 1; next }
		on && /^    / { print substr($0, 5); seen = 1; next } on && seen && /^[^ ]/ { exit }' \
		"$REPO_ROOT/README.md" | sed 's/ *# .*$//')
	[ "${#cmds[@]}" -eq 10 ] || fail "the README block changed: ${cmds[*]}"
	S=$MNT
	statehousectl() { "$CTL" -m "$MNT" "$@"; }
	mkdir -p "$S/default/agent-1"
	echo hello >"$S/default/agent-1/greeting"
	for ((i = 0; i < 8; i++)); do
		eval "${cmds[$i]}" || fail "README line failed: ${cmds[$i]}"
	done
	run cat "$S/default/agent-1/lock"
	assert_output mine
	run eval "${cmds[8]}"
	assert_success
	run cat "$S/default/agent-1/greeting"
	assert_output hi
	run eval "${cmds[8]}"
	assert_failure 4 # at version 2 now
	echo t >"$S/default/agent-1/tasks"
	echo other >"$S/default/agent-1/other"
	run eval "${cmds[9]}"
	assert_failure 124 # timeout ended the wait for new commits
	[ "${#lines[@]}" -eq 1 ]
	sh_jq '.ops[0].key == "tasks"' <(echo "${lines[0]}")
}
