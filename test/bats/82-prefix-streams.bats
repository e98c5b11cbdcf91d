#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Prefix watches: .events/<ns>/<agent>/<prefix...>.jsonl and its .follow twin hold only
# the ops on keys at or below the prefix, with the blocking, poll and EINTR of every
# .follow file; statehousectl tail --prefix follows one.  See statehouse(5) ".events".

setup() {
	load helper
	load follow_helper
	sh_default_setup
	A="$MNT/default/agent-1"
	EV="$MNT/.events"
	FO="$MNT/.follow"
	CTL="$STATEHOUSECTL"
	BG_PIDS=()
	mkdir -p "$A/jobs" "$A/jobs2"
}

teardown() {
	sh_kill_bg
	sh_default_teardown
}

# prefix_view PREFIX FILE: what agent-1's stream of PREFIX must hold, from the agent's own
# stream FILE: the commits with ops on PREFIX or below it, with only those ops.
prefix_view() {
	jq -c --arg p "$1" '
		def under: .key == $p or (.key // "" | startswith($p + "/"));
		select(any(.ops[]; under)) | .ops |= map(select(under))' "$2"
}

# commit_mix: commits on keys in and out of the prefix "jobs": direct writes, a delete,
# a directory made, and a transaction with ops on both sides.
commit_mix() {
	echo 1 >"$A/jobs/1"         # in (after the mkdir of jobs and jobs2 in setup)
	echo x >"$A/jobs2/1"        # out: a string prefix, not a path prefix
	echo j >"$A/job"            # out
	echo o >"$MNT/default/agent-2/jobs" # out: another agent
	mkdir "$A/jobs/sub"         # in: a directory made below it
	echo 2 >"$A/jobs/sub/2"     # in
	T="$MNT/.tx/mixed"
	mkdir "$T"
	echo 3 >"$T/default/agent-1/jobs/3"
	echo y >"$T/default/agent-1/other"
	rm "$T/default/agent-1/jobs/1"
	sh_commit "$T"              # in: its ops on jobs/ only
	echo z >"$A/other"          # out
}

@test "a prefix stream holds exactly the commits with ops at or below the prefix, with only those ops" {
	commit_mix
	prefix_view jobs "$EV/default/agent-1.jsonl" >"$SH_TMP/want"
	[ "$(wc -l <"$SH_TMP/want")" -eq 5 ]
	cmp "$SH_TMP/want" "$EV/default/agent-1/jobs.jsonl"
	run jq -c '[.commit_ts, .txn, [.ops[] | [.op, .key]]]' "$EV/default/agent-1/jobs.jsonl"
	assert_output "$(
		cat <<-'EOF'
			[1,"auto",[["mkdir","jobs"]]]
			[3,"auto",[["put","jobs/1"]]]
			[7,"auto",[["mkdir","jobs/sub"]]]
			[8,"auto",[["put","jobs/sub/2"]]]
			[9,"mixed",[["delete","jobs/1"],["put","jobs/3"]]]
		EOF
	)"
	# a deeper prefix, one key, .ns/ and since/T alike
	cmp <(prefix_view jobs/sub "$EV/default/agent-1.jsonl") "$EV/default/agent-1/jobs/sub.jsonl"
	cmp <(prefix_view job "$EV/default/agent-1.jsonl") "$EV/default/agent-1/job.jsonl"
	cmp "$EV/default/agent-1/jobs.jsonl" "$EV/.ns/default/agent-1/jobs.jsonl"
	cmp <(jq -c 'select(.commit_ts >= 9)' "$EV/default/agent-1/jobs.jsonl") \
		"$EV/since/9/default/agent-1/jobs.jsonl"
	# a prefix nothing was ever committed under: an empty stream
	run cat "$EV/default/agent-1/nothing/here.jsonl"
	assert_success
	assert_output ''
}

@test "a prefix follower sees exactly the ops under its prefix as they commit, and blocks in between" {
	bg cat "$FO/default/agent-1/jobs.jsonl" >"$SH_TMP/jobs.out"
	bg cat "$FO/since/5/default/agent-1/jobs/sub.jsonl" >"$SH_TMP/sub.out"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[1]}"
	commit_mix
	sh_wait_until 20 has_lines "$SH_TMP/jobs.out" 5
	sh_wait_until 20 has_lines "$SH_TMP/sub.out" 2
	cmp "$SH_TMP/jobs.out" "$EV/default/agent-1/jobs.jsonl"
	cmp "$SH_TMP/sub.out" "$EV/default/agent-1/jobs/sub.jsonl"
	# commits outside the prefix wake nobody's read with a line
	echo w >"$A/jobs2/2"
	echo w >"$A/other"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
	[ "$(nlines "$SH_TMP/jobs.out")" -eq 5 ]
	echo 4 >"$A/jobs/4"
	sh_wait_until 20 has_lines "$SH_TMP/jobs.out" 6
	sh_jq '.ops == [{"ns":"default","agent":"agent-1","key":"jobs/4","op":"put","version":1,"value":4}]' \
		<(tail -n 1 "$SH_TMP/jobs.out")
	[ "$(nlines "$SH_TMP/sub.out")" -eq 2 ]
	kill -0 "${BG_PIDS[1]}"
}

@test "poll reports a prefix's .follow file readable only when a commit under the prefix arrives" {
	# commits 1 and 2 made jobs and jobs2; the stream from 3 on starts empty
	bg "$SH_PYTHON" -c "$PY_POLL" "$FO/since/3/default/agent-1/jobs.jsonl" "$SH_TMP/poll.out" \
		"$SH_TMP/m1" "$SH_TMP/m2"
	py="${BG_PIDS[0]}"
	sh_wait_until 20 test -e "$SH_TMP/m1"
	echo out >"$A/other"        # may wake the poller, which polls again: nothing for it
	echo one >"$A/jobs/1"
	sh_wait_until 20 test -e "$SH_TMP/m2"
	echo out2 >"$A/jobs2/x"
	echo two >"$A/jobs/2"
	wait "$py"
	run cat "$SH_TMP/poll.out"
	assert_output "$(
		printf '%s\n' 'select before: not readable' 'poll before: not readable' 'select: readable'
		sed -n 1p "$EV/since/3/default/agent-1/jobs.jsonl"
		printf '%s\n' 'poll after read: not readable' 'poll: readable'
		sed -n 2p "$EV/since/3/default/agent-1/jobs.jsonl"
	)"
	run jq -r '.ops[].key' "$EV/since/3/default/agent-1/jobs.jsonl"
	assert_output "$(printf 'jobs/1\njobs/2')"
}

@test "a signal interrupts a blocked prefix follower's read with EINTR; the next read gets the whole commit" {
	bg "$SH_PYTHON" -c "$PY_EINTR" "$FO/since/3/default/agent-1/jobs.jsonl" "$SH_TMP/eintr.out"
	py="${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "$py"
	kill -ALRM "$py"
	sh_wait_until 20 has_lines "$SH_TMP/eintr.out" 1
	run cat "$SH_TMP/eintr.out"
	assert_output 'first: EINTR'
	# blocked again: a commit outside the prefix does not end the read
	sh_wait_until 20 blocked_in_fuse "$py"
	echo out >"$A/other"
	T="$MNT/.tx/t"
	mkdir "$T"
	for i in $(seq 1 20); do echo "value $i" >"$T/default/agent-1/jobs/k$i"; done
	echo out >"$T/default/agent-1/other"
	sh_commit "$T"
	wait "$py"
	run cat "$SH_TMP/eintr.out"
	assert_output "$(echo 'first: EINTR'; cat "$EV/since/3/default/agent-1/jobs.jsonl")"
	sh_jq '.txn == "t" and (.ops | length) == 20 and all(.ops[]; .key | startswith("jobs/"))' \
		<(tail -n 1 "$SH_TMP/eintr.out")
}

@test "prefix streams are there by name: their directories list nothing, a stream stats as a stream, bad names fail" {
	echo 1 >"$A/jobs/1"
	[ -d "$EV/default/agent-1" ]
	[ -d "$EV/default/agent-1/jobs" ]
	[ -d "$FO/since/1/.ns/default/agent-1/jobs" ]
	# every prefix is there by name: the directories list nothing
	run ls -A "$EV/default/agent-1"
	assert_output ''
	# a stream's size shows once a reader has read it to its end, as for every stream
	cat "$EV/default/agent-1/jobs.jsonl" >/dev/null
	[ "$(stat -c %s "$EV/default/agent-1/jobs.jsonl")" -eq "$(wc -c <"$EV/default/agent-1/jobs.jsonl")" ]
	[ "$(stat -c %A "$EV/default/agent-1/jobs.jsonl")" = -r--r--r-- ]
	run sh_errno stat "$EV/default/agent-1/jobs.jsonl/x"
	assert_output ENOTDIR
	run sh_errno stat "$EV/default/agent-1/$(sh_longname 256)"
	assert_output ENAMETOOLONG
	run sh_errno read "$EV/default/agent-1/$(sh_longname 250)/$(sh_longname 250)/$(sh_longname 250)/$(sh_longname 250)/$(sh_longname 250).jsonl"
	assert_output ENAMETOOLONG
	run sh_errno write "$EV/default/agent-1/jobs.jsonl" x
	assert_output EROFS
}

@test "statehousectl tail AGENT --prefix P shows and follows only the commits under P" {
	commit_mix
	# --json: the stream's lines (with the fields statehousectl adds)
	run "$CTL" -m "$MNT" --json tail agent-1 --prefix jobs -n 2
	assert_success
	assert_equal "$(jq -c '{commit_ts, ops}' <<<"$output")" \
		"$(tail -n 2 "$EV/default/agent-1/jobs.jsonl" | jq -c '{commit_ts, ops}')"
	run "$CTL" -m "$MNT" --json tail agent-1 --prefix jobs/ -n 100
	assert_success
	assert_equal "$(jq -c '{commit_ts, ops}' <<<"$output")" \
		"$(jq -c '{commit_ts, ops}' "$EV/default/agent-1/jobs.jsonl")"
	run "$CTL" -m "$MNT" tail agent-1 --prefix jobs/sub
	assert_success
	assert_line --index 0 --partial 'mkdir  jobs/sub'
	assert_line --index 1 --partial 'put    jobs/sub/2'
	bg "$CTL" -m "$MNT" --json tail agent-1 --prefix jobs -n 1 -f >"$SH_TMP/tail.out"
	sh_wait_until 20 has_lines "$SH_TMP/tail.out" 1
	echo out >"$A/other"
	echo 5 >"$A/jobs/5"
	echo out >"$A/jobs2/9"
	echo 6 >"$A/jobs/6"
	sh_wait_until 20 has_lines "$SH_TMP/tail.out" 3
	run jq -r '.ops[].key' "$SH_TMP/tail.out"
	assert_output "$(printf 'jobs/1\njobs/3\njobs/5\njobs/6')"
}

@test "statehousectl tail --prefix refuses a prefix that is no key path" {
	run "$CTL" -m "$MNT" tail agent-1 --prefix ''
	assert_failure 2
	assert_output --partial "invalid --prefix '': it is empty"
	run "$CTL" -m "$MNT" tail agent-1 --prefix 'a//b'
	assert_failure 2
	assert_output --partial 'empty path component'
	run "$CTL" -m "$MNT" tail agent-1 --prefix ../x
	assert_failure 2
}
