#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# examples/human-approval-agent: a request that waits on its .follow stream until a second
# process writes human_decision; APPROVAL_AUTO, --explain after a restart, --resume from
# every step, a wait through a daemon restart (or --no-wait and a lost stream), --reset
# and the errors; the example README's commands.

load helper

setup() {
	sh_default_setup
	EX="$REPO_ROOT/examples/human-approval-agent"
	AP="$EX/approval-agent"
	REFUND='{"type":"refund","customer":"c-1042","amount":42.5,"reason":"parcel arrived damaged"}'
	ACCESS='{"type":"access","user":"ana","resource":"prod-billing-db","hours":4,"reason":"incident 7"}'
	A="$MNT/default/approval-agent"
	AGENT_PID=
}

teardown() {
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	sh_default_teardown
}

# start_agent ARGS...: the agent in the background (fd 3 closed, or bats waits for it),
# its output in $SH_TMP/agent.out and .err.
start_agent() {
	"$AP" --mount "$MNT" "$@" >"$SH_TMP/agent.out" 2>"$SH_TMP/agent.err" 3>&- &
	AGENT_PID=$!
}

# finish_agent: wait for the background agent; its exit status in $status.
finish_agent() {
	status=0
	wait "$AGENT_PID" || status=$?
	AGENT_PID=
}

# waiting: workflow_state says the agent waits (polled: no jq).
waiting() {
	local w
	read -r w <"$A/workflow_state" && [[ $w == *'"status":"waiting"'* ]]
}

# wait_blocked: wait until the agent holds its .follow stream open (from the approval
# request's commit on): it is at, or in, the blocking read.
wait_blocked() {
	local ts
	sh_wait_until 30 waiting
	ts=$(sh_xattr commit_ts "$A/approval_request")
	sh_wait_until 30 test "/proc/$AGENT_PID/fd/4" -ef "$MNT/.follow/since/$ts/default/approval-agent.jsonl"
	[ "$(readlink "/proc/$AGENT_PID/fd/4")" = "$MNT/.follow/since/$ts/default/approval-agent.jsonl" ]
}

# check_trail FINAL_STATUS: the keys each commit of the agent wrote, in order, and one
# version of workflow_state per step.
check_trail() {
	run jq -c '[.ops[] | .key]' "$MNT/.events/default/approval-agent.jsonl"
	assert_output "$(printf '%s\n' '["request","workflow_state"]' '["analysis","workflow_state"]' \
		'["proposal","workflow_state"]' '["approval_request","workflow_state"]' '["human_decision"]' \
		'["workflow_state"]' '["final_action","workflow_state"]')"
	run jq -r '"\(.step) \(.status)"' "$MNT"/.history/default/approval-agent/workflow_state/{1,2,3,4,5,6}
	assert_output "$(printf '%s\n' 'request received' 'analysis analysed' 'proposal proposed' \
		'approval_request waiting' "human_decision $1" "final_action $2")"
	[ "$(sh_xattr version "$A/workflow_state")" -eq 6 ]
	[ "$(sh_xattr version "$A/human_decision")" -eq 1 ]
	sh_jq '.step == "human_decision" and .decision_version == 1' \
		"$MNT/.history/default/approval-agent/workflow_state/5"
}

@test "a refund runs end to end with APPROVAL_AUTO=approve, each step one transaction of its key and workflow_state" {
	APPROVAL_AUTO=approve run "$AP" --mount "$MNT" --request "$REFUND"
	assert_success
	assert_line --index 0 --regexp '^#[0-9]+ request received: refund of 42.50 to c-1042, parcel arrived damaged$'
	assert_line --index 1 --regexp '^#[0-9]+ analysis analysed: risk low: amount 42.50 is within the 100.00 self-service limit$'
	assert_line --index 2 --regexp '^#[0-9]+ proposal proposed: approve: refund 42.50 to c-1042$'
	assert_line --index 3 --regexp '^#[0-9]+ approval_request waiting: approve: refund 42.50 to c-1042\? \(recommended: approve\)$'
	assert_line --index 4 --regexp '^#[0-9]+ human_decision written by APPROVAL_AUTO=approve$'
	assert_line --index 5 --regexp '^#[0-9]+ human_decision approved: the agent took decision version 1$'
	assert_line --index 6 --regexp '^#[0-9]+ final_action executed: refund 42.50 to c-1042 \(approved: decided by APPROVAL_AUTO=approve\)$'
	[ "${#lines[@]}" -eq 7 ]
	check_trail approved executed
	# each step's key was committed with workflow_state, at one commit_ts
	for k in request analysis proposal approval_request final_action; do
		[ "$(sh_xattr commit_ts "$A/$k")" = "$(jq -r --arg k "$k" 'select(.ops[0].key == $k) | .commit_ts' \
			"$MNT/.events/default/approval-agent.jsonl")" ]
	done
	sh_jq '.executed == true and .action == "refund 42.50 to c-1042"' "$A/final_action"
	sh_jq '.approved == true and .by == "APPROVAL_AUTO"' "$A/human_decision"
	sh_jq '.type == "refund" and .amount == 42.5' "$A/request"
	run ls -A "$MNT/.tx"
	assert_output ''
}

@test "the gate holds until a second process writes human_decision, as the example README shows, then the agent finishes" {
	# Terminal 1 of examples/human-approval-agent/README.md, in the background.
	S=$MNT
	(cd "$EX" && exec ./approval-agent --mount $S --request '{"type":"refund","customer":"c-1042","amount":42.5,"reason":"parcel arrived damaged"}') \
		>"$SH_TMP/agent.out" 2>"$SH_TMP/agent.err" 3>&- &
	AGENT_PID=$!
	wait_blocked
	# it waits: no decision, no action
	kill -0 "$AGENT_PID"
	run sh_errno stat "$A/final_action"
	assert_output ENOENT
	# terminal 2, the person
	run cat $S/default/approval-agent/workflow_state
	assert_output --regexp '^\{"step":"approval_request","status":"waiting","updated_at":"[0-9-]+T[0-9:]+Z"\}$'
	echo '{"approved":true,"reason":"ok"}' >$S/default/approval-agent/human_decision
	finish_agent
	[ "$status" -eq 0 ] || fail "the agent exited $status: $(cat "$SH_TMP/agent.out" "$SH_TMP/agent.err")"
	run cat "$SH_TMP/agent.out"
	assert_line --index 4 'waiting for a decision; from another terminal:'
	assert_line --index 5 "  echo '{\"approved\":true,\"reason\":\"ok\"}' > $MNT/default/approval-agent/human_decision"
	assert_line --index 6 --regexp '^#[0-9]+ human_decision approved: the agent took decision version 1$'
	assert_line --index 7 --regexp '^#[0-9]+ final_action executed: refund 42.50 to c-1042 \(approved: ok\)$'
	run cat "$SH_TMP/agent.err"
	assert_output ''
	check_trail approved executed
	sh_jq '.executed == true and .reason == "ok"' "$A/final_action"
	# the person's decision came before the agent's own commit that took it
	[ "$(sh_xattr commit_ts "$A/human_decision")" -lt "$(sh_xattr commit_ts "$A/final_action")" ]
	run jq -r 'select(.ops[0].key == "human_decision") | .txn' "$MNT/.events/default/approval-agent.jsonl"
	assert_output auto
	ex() { (cd "$EX" && "$@"); }
	run ex ./approval-agent --mount $S --explain
	assert_success
	assert_line --regexp '^#[0-9]+  [0-9T:-]+Z  human_decision approved: ok \(a direct write\)$'
	assert_line 'now: final_action executed'
}

@test "APPROVAL_AUTO=reject declines, and --explain prints the whole decision trail from stored state, the same after a daemon restart" {
	APPROVAL_AUTO=reject run "$AP" --mount "$MNT" --request "$ACCESS"
	assert_success
	assert_line --regexp '^#[0-9]+ analysis analysed: risk high: prod-billing-db is a privileged resource; 4 h is within the 8 h default$'
	assert_line --regexp '^#[0-9]+ proposal proposed: reject: grant ana access to prod-billing-db for 4 h$'
	assert_line --regexp '^#[0-9]+ final_action declined: grant ana access to prod-billing-db for 4 h not done \(rejected: decided by APPROVAL_AUTO=reject\)$'
	check_trail rejected declined
	sh_jq '.executed == false and .action == "none"' "$A/final_action"
	run "$AP" --mount "$MNT" --explain
	assert_success
	before=$output
	t=$(sh_xattr commit_ts "$A/request")
	assert_line --index 0 "decision trail of 'default/approval-agent' from commit_ts $t:"
	assert_line --index 1 --regexp "^#$t  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z  request received: access to prod-billing-db for ana for 4 h, incident 7$"
	assert_line --index 2 --regexp "^#$((t + 1))  \S+  analysis analysed: risk high: prod-billing-db is a privileged resource; "
	assert_line --index 3 --regexp "^#$((t + 2))  \S+  proposal proposed: reject: grant ana access to prod-billing-db for 4 h$"
	assert_line --index 4 --regexp "^#$((t + 3))  \S+  approval_request waiting: approve: grant ana access to prod-billing-db for 4 h\? \(recommended: reject\)$"
	assert_line --index 5 --regexp "^#$((t + 4))  \S+  human_decision rejected: decided by APPROVAL_AUTO=reject \(transaction approval-agent:auto-decision:[0-9]+, by APPROVAL_AUTO\)$"
	assert_line --index 6 --regexp "^#$((t + 5))  \S+  human_decision rejected: the agent took decision version 1$"
	assert_line --index 7 --regexp "^#$((t + 6))  \S+  final_action declined: grant ana access to prod-billing-db for 4 h not done \(rejected: decided by APPROVAL_AUTO=reject\)$"
	assert_line --index 8 'now: final_action declined'
	[ "${#lines[@]}" -eq 9 ]
	sh_restart
	run "$AP" --mount "$MNT" --explain
	assert_success
	[ "$output" = "$before" ]
}

@test "a decision that is not {approved, reason} is reported and ignored, and the next valid one releases the gate" {
	start_agent --request "$REFUND"
	wait_blocked
	echo 'yes please' >"$A/human_decision"
	sh_wait_until 30 grep -q ignoring "$SH_TMP/agent.err"
	echo '{"approved":"yes"}' >"$A/human_decision"
	echo '{"approved":false,"reason":"over budget"}' >"$A/human_decision"
	finish_agent
	[ "$status" -eq 0 ]
	run cat "$SH_TMP/agent.err"
	assert_output "$(printf '%s\n' \
		'approval-agent: ignoring human_decision version 1: it is not {"approved":true|false,"reason":"..."}' \
		'approval-agent: ignoring human_decision version 2: it is not {"approved":true|false,"reason":"..."}')"
	sh_jq '.step == "human_decision" and .status == "rejected" and .decision_version == 3' \
		"$MNT/.history/default/approval-agent/workflow_state/5"
	sh_jq '.executed == false and .reason == "over budget"' "$A/final_action"
	# a later write of human_decision changes nothing that was done
	echo '{"approved":true,"reason":"too late"}' >"$A/human_decision"
	run "$AP" --mount "$MNT" --resume
	assert_output --partial 'final_action declined: refund 42.50 to c-1042 not done (rejected: over budget)'
	run "$AP" --mount "$MNT" --explain
	assert_line --regexp '^#[0-9]+  \S+  human_decision invalid: yes please \(a direct write\)$'
	assert_line --regexp '^#[0-9]+  \S+  human_decision invalid: \{"approved":"yes"\} \(a direct write\)$'
	assert_line --regexp '^#[0-9]+  \S+  human_decision rejected: over budget \(a direct write\)$'
	assert_line --regexp '^#[0-9]+  \S+  human_decision approved: too late \(a direct write\)$'
	assert_line 'now: final_action declined'
}

@test "killed at each step in turn, --resume goes on from the step committed last to the same final action" {
	export APPROVAL_AUTO=approve
	run "$AP" --mount "$MNT" --request "$REFUND" --crash-at-step analysis
	prev=request
	for s in analysis proposal approval_request human_decision final_action; do
		[ "$status" -eq 137 ] || fail "--crash-at-step $s exited $status: $output"
		assert_line --regexp "^approval-agent: step $s staged in '\.tx/approval-agent:$s:[0-9]+'; dying by SIGKILL before the commit$"
		run jq -r .step "$A/workflow_state"
		assert_output "$prev"
		run sh_errno stat "$A/$s"
		[ "$s" = human_decision ] || assert_output ENOENT
		case $s in
		final_action) run "$AP" --mount "$MNT" --resume ;;
		analysis) run "$AP" --mount "$MNT" --resume --crash-at-step proposal ;;
		proposal) run "$AP" --mount "$MNT" --resume --crash-at-step approval_request ;;
		approval_request) run "$AP" --mount "$MNT" --resume --crash-at-step human_decision ;;
		human_decision) run "$AP" --mount "$MNT" --resume --crash-at-step final_action ;;
		esac
		assert_line --index 0 --regexp "^aborted transaction 'approval-agent:$s:[0-9]+' of a killed run$"
		assert_line --index 1 --regexp "^resuming 'approval-agent' after $prev "
		assert_line --index 2 --regexp "^#[0-9]+ $s "
		prev=$s
	done
	assert_success
	assert_line --regexp '^#[0-9]+ final_action executed: refund 42.50 to c-1042 \(approved: decided by APPROVAL_AUTO=approve\)$'
	check_trail approved executed
	run ls -A "$MNT/.tx"
	assert_output ''
}

@test "the daemon SIGKILLed while the agent waits: the agent waits for the mount, opens the gate again after the restart and takes the decision" {
	start_agent --request "$ACCESS"
	wait_blocked
	t=$(sh_xattr commit_ts "$A/approval_request")
	sh_kill9
	sh_wait_until 30 grep -q "^approval-agent: the statehouse mount '$MNT' is not answering (Transport endpoint is not connected); waiting for it to come back$" "$SH_TMP/agent.err"
	kill -0 "$AGENT_PID"
	sh_mount
	# the run starts over from what is stored: the gate of the same approval request
	wait_blocked
	echo '{"approved":true,"reason":"incident 7 approved by on-call"}' >"$A/human_decision"
	finish_agent
	assert_equal "$status" 0
	run cat "$SH_TMP/agent.err"
	assert_line --index 0 --regexp "^approval-agent: lost '\.follow/since/$t/default/approval-agent\.jsonl' while waiting for a decision \((Transport endpoint is not connected|Software caused connection abort)\)$"
	assert_line --index 1 "approval-agent: the statehouse mount '$MNT' is not answering (Transport endpoint is not connected); waiting for it to come back"
	assert_line --index 2 "approval-agent: '$MNT' answers again"
	assert_line --index 3 "approval-agent: the daemon of '$MNT' restarted under the run; starting over from what is stored"
	[ "${#lines[@]}" -eq 4 ]
	run cat "$SH_TMP/agent.out"
	assert_line "resuming 'approval-agent' after approval_request (waiting)"
	assert_line --regexp '^#[0-9]+ final_action executed: grant ana access to prod-billing-db for 4 h \(approved: incident 7 approved by on-call\)$'
	check_trail approved executed
}

@test "the daemon killed and restarted at once while the agent waits: the agent sees another daemon, opens the gate again and takes the decision" {
	start_agent --request "$REFUND"
	wait_blocked
	sh_restart
	# the run starts over from what is stored: the gate of the same approval request
	wait_blocked
	run cat "$SH_TMP/agent.err"
	assert_line "approval-agent: the daemon of '$MNT' restarted under the run; starting over from what is stored"
	echo '{"approved":true,"reason":"ok"}' >"$A/human_decision"
	finish_agent
	assert_equal "$status" 0
	run cat "$SH_TMP/agent.out"
	assert_line "resuming 'approval-agent' after approval_request (waiting)"
	assert_line --regexp '^#[0-9]+ final_action executed: refund 42\.50 to c-1042 \(approved: ok\)$'
	check_trail approved executed
}

@test "with --no-wait the agent says it lost the stream (exit 3), and --resume after the restart takes the decision written meanwhile" {
	start_agent --request "$ACCESS" --no-wait
	wait_blocked
	t=$(sh_xattr commit_ts "$A/approval_request")
	sh_kill9
	finish_agent
	[ "$status" -eq 3 ]
	run cat "$SH_TMP/agent.err"
	assert_output --regexp "^approval-agent: lost '\.follow/since/$t/default/approval-agent\.jsonl' while waiting for a decision \((Transport endpoint is not connected|Software caused connection abort); run 'approval-agent --resume' once the mount is back\)$"
	run "$AP" --mount "$MNT" --explain --no-wait
	assert_failure 3
	assert_output "approval-agent: cannot reach the statehouse mount '$MNT': Transport endpoint is not connected"
	sh_mount
	run "$AP" --mount "$MNT" --explain
	assert_success
	assert_line --index 4 --regexp "^#$t  \S+  approval_request waiting: approve: grant ana access to prod-billing-db for 4 h\? \(recommended: reject\)$"
	assert_line --index 5 'now: approval_request waiting'
	assert_line --index 6 "decide with: echo '{\"approved\":true,\"reason\":\"ok\"}' > $A/human_decision"
	[ "${#lines[@]}" -eq 7 ]
	# the decision is committed before the agent runs again: --resume reads the stream from
	# the approval request's commit, so it sees it (a gate opened at the head would wait for
	# ever, which the timeout turns into a failure)
	echo '{"approved":true,"reason":"incident 7 approved by on-call"}' >"$A/human_decision"
	run timeout 20 "$AP" --mount "$MNT" --resume
	assert_success
	assert_line --index 0 "resuming 'approval-agent' after approval_request (waiting)"
	assert_line --index 1 --regexp '^#[0-9]+ human_decision approved: the agent took decision version 1$'
	assert_line --regexp '^#[0-9]+ final_action executed: grant ana access to prod-billing-db for 4 h \(approved: incident 7 approved by on-call\)$'
	check_trail approved executed
}

@test "--reset deletes all of the agent's keys in one transaction, and a new request starts" {
	run "$AP" --mount "$MNT" --request "$REFUND" --crash-at-step approval_request
	[ "$status" -eq 137 ]
	run "$AP" --mount "$MNT" --reset
	assert_success
	assert_line --index 0 --regexp "^aborted transaction 'approval-agent:approval_request:[0-9]+' of a killed run$"
	assert_line --index 1 --regexp "^reset 'approval-agent': 4 keys deleted at commit_ts [0-9]+$"
	t=${output##* }
	run ls -A "$A"
	assert_output ''
	run jq -c "select(.commit_ts == $t) | [.ops[] | .op + \" \" + .key]" "$MNT/.events/default/approval-agent.jsonl"
	assert_output '["delete analysis","delete proposal","delete request","delete workflow_state"]'
	run "$AP" --mount "$MNT" --resume
	assert_failure 1
	assert_output "approval-agent: cannot resume 'approval-agent': it has no request (start one with --request)"
	run "$AP" --mount "$MNT" --reset
	assert_output "reset 'approval-agent': it has no keys"
	run "$AP" --mount "$MNT" --request "$ACCESS" --crash-at-step proposal
	[ "$status" -eq 137 ]
	run "$AP" --mount "$MNT" --explain
	assert_line --index 0 "decision trail of 'default/approval-agent' from commit_ts $((t + 1)):"
	assert_line --index 1 --regexp "^#$((t + 1))  \S+  request received: access to prod-billing-db "
	assert_line --index 3 'now: analysis analysed'
	[ "${#lines[@]}" -eq 4 ]
}

@test "errors a user can hit: no mount, not a statehouse mount, nothing to resume or explain, a bad request, bad options" {
	run env -u STATEHOUSE_MOUNT "$AP" --request "$REFUND"
	assert_failure 2
	assert_line --index 0 'approval-agent: no mount: give --mount M or set STATEHOUSE_MOUNT'
	mkdir "$SH_TMP/plain"
	run "$AP" --mount "$SH_TMP/plain" --request "$REFUND"
	assert_failure 3
	assert_output "approval-agent: '$SH_TMP/plain' is not a statehouse mount (no .health)"
	STATEHOUSE_MOUNT=$MNT run "$AP" --resume
	assert_failure 1
	assert_output "approval-agent: cannot resume 'approval-agent': it has no request (start one with --request)"
	run "$AP" --mount "$MNT" --explain
	assert_failure 1
	assert_output "approval-agent: cannot explain 'approval-agent': it has no request"
	run "$AP" --mount "$MNT" --request 'refund please'
	assert_failure 2
	assert_output --regexp "^approval-agent: invalid request 'refund please': not JSON \(.+\)$"
	run "$AP" --mount "$MNT" --request '{"type":"refund","customer":"c-1"}'
	assert_failure 2
	assert_output "approval-agent: invalid request '{\"type\":\"refund\",\"customer\":\"c-1\"}': a refund needs an amount above 0"
	run "$AP" --mount "$MNT" --request '{"type":"loan"}'
	assert_failure 2
	assert_output "approval-agent: invalid request '{\"type\":\"loan\"}': the type is refund or access"
	APPROVAL_AUTO=maybe run "$AP" --mount "$MNT" --request "$REFUND"
	assert_failure 2
	assert_line --index 0 "approval-agent: APPROVAL_AUTO is approve or reject, not 'maybe'"
	run "$AP" --mount "$MNT" --approve
	assert_failure 2
	assert_line --index 0 "approval-agent: unknown option '--approve'"
	run "$AP" --mount "$MNT" --request
	assert_failure 2
	assert_line --index 0 "approval-agent: option '--request' needs a value"
	run "$AP" --mount "$MNT" --explain --reset
	assert_failure 2
	assert_line --index 0 'approval-agent: --explain and --reset cannot go together'
	run "$AP" --mount "$MNT" --resume --crash-at-step request
	assert_failure 2
	assert_line --index 0 "approval-agent: --crash-at-step takes one of analysis proposal approval_request human_decision final_action, not 'request'"
	# nothing of the above committed anything
	run ls -A "$MNT/default"
	assert_output ''
	run "$AP" --mount "$MNT" --request "$REFUND" --crash-at-step analysis
	[ "$status" -eq 137 ]
	run "$AP" --mount "$MNT" --request "$REFUND"
	assert_failure 1
	assert_output "approval-agent: 'approval-agent' already has a request: continue it with --resume or start over with --reset"
}
