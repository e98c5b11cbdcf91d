#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# examples/resumable-research-agent: a five-step agent killed at every step, and with the
# daemon killed under it (it waits for the mount, or stops with --no-wait), resumes to the
# same answer with no step lost or done twice; its replay, reset and errors; and the
# README tour's "An agent's life" lines as written.

load helper

setup() {
	sh_default_setup
	RA="$REPO_ROOT/examples/resumable-research-agent/research-agent"
	TASK='What is 42 * 137?'
	AGENT_PID=
}

teardown() {
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	sh_default_teardown
}

# check_steps AGENT: the run of AGENT is complete and every step was committed exactly
# once, together with its progress marker: progress has versions 1..6 holding
# completed_steps 0..5, step/00N has one version (a put) at the commit_ts of progress
# version N+1, and answer one version at that of step 5.
check_steps() {
	local a=$1 H="$MNT/.history/default/$1" v p
	run jq -r .answer "$MNT/default/$a/answer"
	assert_output '42 * 137 = 5754'
	run jq -nce '[inputs | {k: (input_filename | split("/")[-2]), v: [.version, .op, .commit_ts]}] |
		group_by(.k) | map({key: .[0].k, value: map(.v)}) | from_entries |
		.progress as $p |
		($p | map(.[0]) == [1, 2, 3, 4, 5, 6]) and ($p | all(.[1] == "put")) and
		(.answer == [[1, "put", $p[5][2]]]) and
		([range(1; 6) as $n | .["step%2F00\($n)"] == [[1, "put", $p[$n][2]]]] | all) and
		(keys == ["answer", "progress", "step%2F001", "step%2F002", "step%2F003", "step%2F004", "step%2F005"])' \
		"$H"/progress/index.jsonl "$H"/step%2F00{1,2,3,4,5}/index.jsonl "$H"/answer/index.jsonl
	assert_success
	for v in 1 2 3 4 5 6; do
		read -r p <"$H/progress/$v"
		[ "$p" = "{\"completed_steps\":$((v - 1))}" ] || fail "progress version $v is '$p'"
	done
	run getfattr --absolute-names --only-values -n user.statehouse.version \
		"$MNT/default/$a"/step/00{1,2,3,4,5} "$MNT/default/$a/answer"
	assert_output 111111
	run ls "$MNT/default/$a/step"
	assert_output "$(printf '001\n002\n003\n004\n005')"
	run cat "$MNT/default/$a/progress"
	assert_output '{"completed_steps":5}'
}

# progress_at_least AGENT N: AGENT's progress marker says N steps or more (polled: no jq).
progress_at_least() {
	local p
	read -r p <"$MNT/default/$1/progress" && [[ $p =~ ^\{\"completed_steps\":([0-9]+)\}$ ]] &&
		[ "${BASH_REMATCH[1]}" -ge "$2" ]
}

@test "the agent answers 42 * 137 in five steps, each committed with its progress marker, and --resume then only prints the answer" {
	run "$RA" --mount "$MNT" --task "$TASK"
	assert_success
	assert_line --index 0 --regexp '^task: committed at commit_ts [0-9]+$'
	assert_line --index 1 --regexp '^step 1/5 analyse: committed at commit_ts [0-9]+$'
	assert_line --index 2 --regexp '^step 2/5 plan: committed at commit_ts [0-9]+$'
	assert_line --index 3 --regexp '^step 3/5 tool_call: committed at commit_ts [0-9]+$'
	assert_line --index 4 --regexp '^step 4/5 synthesise: committed at commit_ts [0-9]+$'
	assert_line --index 5 --regexp '^step 5/5 answer: committed at commit_ts [0-9]+$'
	assert_line --index 6 'answer: 42 * 137 = 5754'
	[ "${#lines[@]}" -eq 7 ]
	check_steps research-agent
	sh_jq '. == {task: "What is 42 * 137?"}' "$MNT/default/research-agent/task"
	sh_jq '.tool == "calculator" and .input == "42 * 137" and .output == "5754" and .ok' \
		"$MNT/default/research-agent/step/003"
	sh_jq '. == {task: "What is 42 * 137?", answer: "42 * 137 = 5754", steps: 5}' \
		"$MNT/default/research-agent/answer"
	run ls -A "$MNT/.tx"
	assert_output ''

	# once done, --resume prints the answer and commits nothing
	before=$(sh_probe_ts)
	run "$RA" --mount "$MNT" --resume
	assert_success
	assert_output 'answer: 42 * 137 = 5754'
	[ "$(sh_probe_ts)" -eq $((before + 1)) ]
}

@test "killed by SIGKILL at each step 1 to 5 in turn, the agent resumes each time, to the same answer with no step lost or done twice" {
	# The first run dies at step 1, each --resume at the next step, the last one finishes.
	run "$RA" --mount "$MNT" --task "$TASK" --crash-at-step 1
	for n in 1 2 3 4 5 6; do
		if [ "$n" -le 5 ]; then
			[ "$status" -eq 137 ] || fail "--crash-at-step $n exited $status: $output"
			assert_line --regexp "^research-agent: step $n \([a-z_]+\) staged in '\.tx/research-agent:step-$n:[0-9]+'; dying by SIGKILL before the commit$"
			refute_line --partial "step $n/5"
			# the staged step is not visible; the steps before it are, with their marker
			run cat "$MNT/default/research-agent/progress"
			assert_output "{\"completed_steps\":$((n - 1))}"
			run sh_errno stat "$MNT/default/research-agent/step/00$n"
			assert_output ENOENT
			run sh_errno stat "$MNT/default/research-agent/answer"
			assert_output ENOENT
			run ls "$MNT/.tx"
			assert_output --regexp "^research-agent:step-$n:[0-9]+$"
		fi
		if [ "$n" -le 4 ]; then
			run "$RA" --mount "$MNT" --resume --crash-at-step $((n + 1))
		elif [ "$n" -eq 5 ]; then
			run "$RA" --mount "$MNT" --resume
		fi
		if [ "$n" -le 5 ]; then
			assert_line --index 0 --regexp "^aborted transaction 'research-agent:step-$n:[0-9]+' of a killed run$"
			assert_line --index 1 "resuming 'research-agent' after step $((n - 1)) of 5"
			assert_line --index 2 --regexp "^step $n/5 [a-z_]+: committed at commit_ts [0-9]+$"
		fi
	done
	assert_success
	assert_line 'answer: 42 * 137 = 5754'
	check_steps research-agent
	run ls -A "$MNT/.tx"
	assert_output ''
}

@test "the daemon SIGKILLed mid-run: the agent waits, also while the mountpoint is a plain directory, and after the restart finishes from what is stored, no step lost or doubled" {
	# Four steps of at least 0.5 s each are left when the daemon dies: the kill lands
	# mid-run (and if it did not, the agent would not wait and the test fail).
	"$RA" --mount "$MNT" --task "$TASK" --step-delay 0.5 >"$SH_TMP/agent.out" 2>"$SH_TMP/agent.err" 3>&- &
	AGENT_PID=$!
	sh_wait_until 30 progress_at_least research-agent 1
	sh_kill9
	sh_wait_until 30 grep -q "^research-agent: the statehouse mount '$MNT' is not answering (.*); waiting for it to come back$" "$SH_TMP/agent.err"
	# the dead mount detached by hand: a plain directory, and the agent waits on
	umount -l "$MNT"
	# while no daemon serves, --no-wait stops at once (exit 3)
	run "$RA" --mount "$MNT" --resume --no-wait
	assert_failure 3
	assert_output "research-agent: '$MNT' is not a statehouse mount (no .health)"
	kill -0 "$AGENT_PID"
	sh_mount
	st=0
	wait "$AGENT_PID" || st=$?
	AGENT_PID=
	[ "$st" -eq 0 ] || fail "the agent exited $st: $(cat "$SH_TMP/agent.out" "$SH_TMP/agent.err")"
	run cat "$SH_TMP/agent.err"
	assert_line --index 0 --regexp "^research-agent: cannot .*: (Transport endpoint is not connected|Software caused connection abort)$"
	assert_line --index 1 --regexp "^research-agent: the statehouse mount '$MNT' is not answering \((Transport endpoint is not connected|Software caused connection abort)\); waiting for it to come back$"
	assert_line --index 2 "research-agent: '$MNT' answers again"
	assert_line --index 3 "research-agent: the daemon of '$MNT' restarted under the run; starting over from what is stored"
	[ "${#lines[@]}" -eq 4 ]
	run cat "$SH_TMP/agent.out"
	assert_line --regexp "^resuming 'research-agent' after step [1-4] of 5$"
	assert_line 'answer: 42 * 137 = 5754'
	check_steps research-agent
	run ls -A "$MNT/.tx"
	assert_output ''
}

@test "with --no-wait the agent stops with the error (exit 3) when the daemon dies, and --resume after the restarts finishes, also after one with a step staged" {
	"$RA" --mount "$MNT" --task "$TASK" --step-delay 0.5 --no-wait >"$SH_TMP/agent.out" 2>"$SH_TMP/agent.err" 3>&- &
	AGENT_PID=$!
	sh_wait_until 30 progress_at_least research-agent 1
	sh_kill9
	st=0
	wait "$AGENT_PID" || st=$?
	AGENT_PID=
	[ "$st" -eq 3 ] || fail "the agent exited $st: $(cat "$SH_TMP/agent.out" "$SH_TMP/agent.err")"
	run cat "$SH_TMP/agent.err"
	[ "${#lines[@]}" -eq 1 ]
	assert_output --regexp "^research-agent: cannot .*: (Transport endpoint is not connected|Software caused connection abort)$"

	# while the daemon is down, the agent says it cannot reach the mount
	run "$RA" --mount "$MNT" --resume --no-wait
	assert_failure 3
	assert_output "research-agent: cannot reach the statehouse mount '$MNT': Transport endpoint is not connected"

	sh_mount
	done_steps=$(jq -r .completed_steps "$MNT/default/research-agent/progress")
	[ "$done_steps" -ge 1 ] && [ "$done_steps" -lt 4 ]
	[ -f "$MNT/default/research-agent/step/00$done_steps" ]
	run sh_errno stat "$MNT/default/research-agent/step/00$((done_steps + 1))"
	assert_output ENOENT
	# again, with the next step staged (by a run killed there) when the daemon dies: the
	# staged step is lost with the daemon and done once after the restart
	n=$((done_steps + 1))
	run "$RA" --mount "$MNT" --resume --crash-at-step $n
	[ "$status" -eq 137 ]
	sh_restart
	run ls -A "$MNT/.tx"
	assert_output ''
	run cat "$MNT/default/research-agent/progress"
	assert_output "{\"completed_steps\":$done_steps}"
	run "$RA" --mount "$MNT" --resume
	assert_success
	refute_line --partial aborted
	assert_line --index 0 "resuming 'research-agent' after step $done_steps of 5"
	assert_line 'answer: 42 * 137 = 5754'
	check_steps research-agent
}

@test "--reset deletes all of the agent's keys in one transaction and leaves other agents alone; a new lookup task then starts, mount from STATEHOUSE_MOUNT" {
	run "$RA" --mount "$MNT" --task "$TASK"
	# another agent whose id begins like this one's, killed with step 1 staged
	run "$RA" --mount "$MNT" --agent research-agent.2 --task "$TASK" --crash-at-step 1
	[ "$status" -eq 137 ]
	other_before=$(sh_dump_tree "$MNT/default/research-agent.2")
	run "$RA" --mount "$MNT" --reset
	assert_success
	assert_output --regexp "^reset 'research-agent': 8 keys deleted at commit_ts [0-9]+$"
	t=${output##* }
	run ls -A "$MNT/default/research-agent"
	assert_output ''
	# the keys' deletes, and the removal of their directory step/ (a directory is state)
	run jq -c "select(.commit_ts == $t) | [(.ops | map(select(.op == \"delete\")) | length), (.ops | map(select(.op != \"delete\") | .op + \" \" + .key))]" "$MNT/.events/default/research-agent.jsonl"
	assert_output '[8,["rmdir step"]]'
	[ "$(sh_dump_tree "$MNT/default/research-agent.2")" = "$other_before" ]
	run "$RA" --mount "$MNT" --replay
	assert_line --regexp "^$t	[^	]+	delete	step/005	v2	-$"
	run "$RA" --mount "$MNT" --resume
	assert_failure 1
	assert_output "research-agent: cannot resume 'research-agent': it has no task (start one with --task)"
	run "$RA" --mount "$MNT" --reset
	assert_success
	assert_output "reset 'research-agent': it has no keys"
	# a new task, this time a lookup (from the offline facts), with the mount from
	# STATEHOUSE_MOUNT; its keys go on with new versions: step/001 is version 3
	STATEHOUSE_MOUNT="$MNT" run "$RA" --task 'How does statehouse recover after a crash?'
	assert_success
	assert_line 'answer: after a crash the statehouse daemon recovers by loading a snapshot and replaying the events after it.'
	sh_jq '.tool == "search" and .ok' "$MNT/default/research-agent/step/003"
	sh_jq '.source == "corpus:recovery"' "$MNT/default/research-agent/step/004"
	[ "$(sh_xattr version "$MNT/default/research-agent/step/001")" -eq 3 ]
	# research-agent's reset left the other agent's staged step alone
	run ls "$MNT/.tx"
	assert_output --regexp '^research-agent\.2:step-1:[0-9]+$'
}

@test "errors a user can hit: no mount, not a statehouse mount, nothing to resume, a task already there, bad options" {
	run env -u STATEHOUSE_MOUNT "$RA" --task "$TASK"
	assert_failure 2
	assert_line --index 0 'research-agent: no mount: give --mount M or set STATEHOUSE_MOUNT'
	assert_line --index 1 --partial 'usage: research-agent'
	mkdir "$SH_TMP/plain"
	run "$RA" --mount "$SH_TMP/plain" --task "$TASK"
	assert_failure 3
	assert_output "research-agent: '$SH_TMP/plain' is not a statehouse mount (no .health)"
	run "$RA" --mount "$SH_TMP/nowhere" --resume
	assert_failure 3
	assert_output "research-agent: '$SH_TMP/nowhere' is not a statehouse mount (no .health)"
	run "$RA" --mount "$MNT" --resume
	assert_failure 1
	assert_output "research-agent: cannot resume 'research-agent': it has no task (start one with --task)"
	run "$RA" --mount "$MNT" --task "$TASK" --crash-at-step 1
	run "$RA" --mount "$MNT" --task "$TASK"
	assert_failure 1
	assert_output "research-agent: 'research-agent' already has a task: continue it with --resume or start over with --reset"
	before=$(sh_probe_ts)
	run "$RA" --mount "$MNT" --frobnicate
	assert_failure 2
	assert_line --index 0 "research-agent: unknown option '--frobnicate'"
	run "$RA" --mount "$MNT" --task
	assert_failure 2
	assert_line --index 0 "research-agent: option '--task' needs a value"
	run "$RA" --mount "$MNT"
	assert_failure 2
	assert_line --index 0 'research-agent: nothing to do: give --task T, --resume, --replay or --reset'
	run "$RA" --mount "$MNT" --task "$TASK" --resume
	assert_failure 2
	assert_line --index 0 'research-agent: --task and --resume cannot go together'
	run "$RA" --mount "$MNT" --resume --crash-at-step 6
	assert_failure 2
	assert_line --index 0 "research-agent: --crash-at-step takes a step from 1 to 5, not '6'"
	run "$RA" --mount "$MNT" --replay --crash-at-step 2
	assert_failure 2
	assert_line --index 0 'research-agent: --crash-at-step goes with --task or --resume'
	run "$RA" --mount "$MNT" --agent .hidden --resume
	assert_failure 2
	assert_line --index 0 "research-agent: invalid agent id '.hidden' (letters, digits, '_', '.', '-'; at most 200)"
	run "$RA" --mount "$MNT" --resume --step-delay soon
	assert_failure 2
	assert_line --index 0 "research-agent: --step-delay takes seconds, not 'soon'"
	# none of it committed anything
	[ "$(sh_probe_ts)" -eq $((before + 1)) ]
	run cat "$MNT/default/research-agent/progress"
	assert_output '{"completed_steps":0}'
}

@test "the README tour's agent's life runs as written, its replay shows each step's key and progress at one commit_ts, and the example README's commands work" {
	# The indented lines of README.md's "An agent's life" block, except the unmount (that
	# one is 90-quickstart's).
	mapfile -t cmds < <(awk '/^An agent.s life/ { on = 1; next } on && /^    / { print substr($0, 5) }
		on && /^[^ ]/ && seen { exit } on && /^    / { seen = 1 }' "$REPO_ROOT/README.md" | grep -v '^fusermount3 ')
	[ "${#cmds[@]}" -eq 4 ] || fail "the README block changed: ${cmds[*]}"
	[[ ${cmds[0]} == R=* ]]
	readme() {
		(cd "$REPO_ROOT" && S=$MNT && eval "${cmds[0]}" && eval "$1")
	}
	run readme "${cmds[1]}"
	[ "$status" -eq 137 ] || fail "'${cmds[1]}' exited $status: $output"
	assert_line --partial "research-agent: step 3 (tool_call) staged in '.tx/research-agent:step-3:"
	# examples/resumable-research-agent/README.md: progress stops before the crashed step
	run cat "$MNT/default/research-agent/progress"
	assert_output '{"completed_steps":2}'
	run readme "${cmds[2]}"
	assert_success
	assert_line "resuming 'research-agent' after step 2 of 5"
	assert_line --index 5 'answer: 42 * 137 = 5754'
	run readme "${cmds[3]}"
	assert_success
	printf '%s\n' "${lines[@]}" >"$SH_TMP/replay"
	check_steps research-agent
	# --replay: one line per operation (task and progress, four steps of two keys, the last
	# step with answer too), each step's key and progress at one commit_ts
	[ "$(wc -l <"$SH_TMP/replay")" -eq 13 ]
	run awk -F'\t' 'NF != 6 || $1 !~ /^[0-9]+$/ || $2 !~ /^[0-9-]+T[0-9:.]+Z$/ || $3 != "put" || $5 !~ /^v[0-9]+$/' "$SH_TMP/replay"
	assert_output ''
	ts() { awk -F'\t' -v k="$1" -v v="$2" '$4 == k && $5 == v { print $1 }' "$SH_TMP/replay"; }
	[ -n "$(ts task v1)" ] && [ "$(ts task v1)" = "$(ts progress v1)" ]
	for n in 1 2 3 4 5; do
		t=$(ts step/00$n v1)
		[ -n "$t" ] && [ "$t" = "$(ts progress v$((n + 1)))" ] || fail "step $n: $(cat "$SH_TMP/replay")"
		[ "$(awk -F'\t' -v t="$t" '$1 == t' "$SH_TMP/replay" | wc -l)" -eq $((n == 5 ? 3 : 2)) ]
		[ "$t" = "$(sh_xattr commit_ts "$MNT/default/research-agent/step/00$n")" ]
	done
	[ "$(ts answer v1)" = "$(ts step/005 v1)" ]
	run grep -P '^\d+\t\S+\tput\tstep/003\tv1\t\{"step":3,"name":"tool_call","tool":"calculator","input":"42 \* 137","ou…$' "$SH_TMP/replay"
	assert_success
	run grep -P '\tprogress\tv3\t\{"completed_steps":2\}$' "$SH_TMP/replay"
	assert_success
	# the example README's own commands, from its directory
	ex() { (cd "$REPO_ROOT/examples/resumable-research-agent" && "$@"); }
	S=$MNT
	run ex ./research-agent --mount $S --resume
	assert_output 'answer: 42 * 137 = 5754'
	run ex ./research-agent --mount $S --replay
	assert_line --regexp $'^[0-9]+\t[^\t]+\tput\tprogress\tv4\t\\{"completed_steps":3\\}$'
	run ex ./research-agent --mount $S --reset
	assert_output --regexp "^reset 'research-agent': 8 keys deleted"
}
