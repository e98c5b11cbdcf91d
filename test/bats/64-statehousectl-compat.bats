#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# statehousectl's compatibility aliases through a real mount: the options of the
# Statehouse SDK's own statehousectl that mean the same here (--namespace, get --pretty
# and --json-output, replay --start-ts/--end-ts/--verbose, dump --format/--output) and the
# original's field names in replay and tail --json (txn_id, namespace, agent_id,
# operations[]), as statehousectl(1) documents them.

bats_require_minimum_version 1.5.0

setup() {
	load helper
	sh_default_setup
	unset STATEHOUSE_MOUNT
}

teardown() {
	sh_default_teardown
}

# ctl ARGS...: statehousectl on this test's mount.
ctl() {
	"$STATEHOUSECTL" -m "$MNT" "$@"
}

@test "--namespace is --ns, before and after the command" {
	run -0 ctl --namespace team put a k one
	[ "$(cat "$MNT/team/a/k")" = one ]
	run -0 ctl get a k --namespace team
	assert_output one
	run -0 ctl --ns team keys a
	assert_output k
	run -0 ctl --json replay a --namespace=team
	[ "$(jq -r .namespace <<<"$output")" = team ]
	run -2 --separate-stderr ctl get a k --namespace
	assert_equal "${stderr_lines[0]}" "statehousectl: option '--namespace' needs a value"
	run -2 --separate-stderr ctl --namespace ../x get a k
	[[ "${stderr_lines[0]}" == "statehousectl: invalid namespace '../x': "* ]]
}

@test "get --pretty prints the key, ns/agent, version, commit_ts and a value summary; --json-output is --json" {
	ctl put a cfg '{"mode":"fast","n":1}'
	ctl put a cfg '{"mode":"slow","n":2}'
	run -0 ctl get a cfg --pretty
	assert_output "$(printf '%s\n' 'key        cfg' 'agent      default/a' 'version    2' \
		'commit_ts  2' 'value      {"mode":"slow","n":2}')"
	# a long value is cut, a text value is a JSON string
	ctl put a long "$(printf 'x%.0s' {1..300})"
	run -0 ctl get a long --pretty
	assert_line --regexp '^value      "x+\.\.\.$'
	[ "${#lines[4]}" -eq $((11 + 200)) ]
	run -0 ctl get a cfg --json-output
	assert_output '{"namespace":"default","agent":"a","key":"cfg","version":2,"commit_ts":2,"value":{"mode":"slow","n":2}}'
	[ "$(ctl get a cfg --json-output | jq -r .value.mode)" = slow ]
	run -2 --separate-stderr ctl get a cfg --pretty --json
	assert_output ''
	assert_equal "${stderr_lines[0]}" "statehousectl: --pretty and --json ask for two different outputs: choose one"
	run -2 --separate-stderr ctl get a cfg --pretty extra
	assert_equal "${stderr_lines[0]}" "statehousectl: too many arguments"
	run -1 --separate-stderr ctl get a missing --pretty
	assert_output ''
}

@test "replay --start-ts and --end-ts are --since and --until, both inclusive; --start-ts 0 is the first commit" {
	for i in 1 2 3 4 5; do ctl put a "k$i" "$i"; done
	run -0 ctl --json replay a --start-ts 2 --end-ts 4
	[ "$(jq -r .commit_ts <<<"$output" | paste -sd' ')" = "2 3 4" ]
	[ "$output" = "$(ctl --json replay a --since 2 --until 4)" ]
	run -0 ctl --json replay a --start-ts 0
	[ "$(jq -r .commit_ts <<<"$output" | paste -sd' ')" = "1 2 3 4 5" ]
	run -0 ctl replay a --start-ts 5
	assert_line --regexp '#5 +a  put +k5  v1  5$'
	[ "${#lines[@]}" -eq 1 ]
	run -2 --separate-stderr ctl replay a --start-ts -1
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed commit_ts '-1' for --start-ts (a non-negative integer)"
	run -2 --separate-stderr ctl replay a --end-ts 0
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed commit_ts '0' for --end-ts (a positive integer)"
	run -2 --separate-stderr ctl replay a --end-ts x
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed commit_ts 'x' for --end-ts (a positive integer)"
}

@test "replay --verbose shows each op's transaction and the whole value" {
	long="{\"text\":\"$(printf 'y%.0s' {1..120})\"}"
	ctl put a k "$long"
	T="$MNT/.tx/job-7"
	mkdir "$T"
	echo '{"step":1}' >"$T/default/a/step"
	rm "$T/default/a/k"
	mv "$T/.commit.pending" "$T/.commit"
	run -0 ctl replay a --verbose
	assert_line --index 0 --regexp '#1 +a  put +k  v1  txn=auto  '
	[[ "${lines[0]}" == *"  txn=auto  $long" ]]
	assert_line --index 1 --regexp '#2 +a  delete k  v2  txn=job-7  \(deleted\)$'
	assert_line --index 2 --regexp '#2 +a  put +step  v1  txn=job-7  \{"step":1\}$'
	# without it: no txn, the value cut
	run -0 ctl replay a
	refute_output --partial txn=
	refute_output --partial "$long"
}

@test "replay and tail --json keep the original's txn_id, namespace, agent_id and operations[], a delete with value null" {
	ctl put a plan '{"step":1}'
	T="$MNT/.tx/job-8"
	mkdir "$T"
	mkdir "$T/default/a/notes"
	echo text >"$T/default/a/notes/1"
	rm "$T/default/a/plan"
	mv "$T/.commit.pending" "$T/.commit"
	chmod 700 "$MNT/default/a"
	run -0 ctl --json replay a
	[ "${#lines[@]}" -eq 3 ]
	# the daemon's fields stay, the original's come after them
	jq -e '.commit_ts == 1 and .txn == "auto" and .ops[0].op == "put" and .txn_id == "auto" and
		.namespace == "default" and .agent_id == "a" and
		.operations == [{"key":"plan","value":{"step":1},"version":1,"deleted":false}]' <<<"${lines[0]}"
	# a directory made in the commit is no operation; a delete's value is null
	jq -e '.txn_id == "job-8" and .operations == [
		{"key":"plan","value":null,"version":2,"deleted":true},
		{"key":"notes/1","value":"text\n","version":1,"deleted":false}] and
		[.ops[].op] == ["delete","mkdir","put"]' <<<"${lines[1]}"
	# an owner change has no operation at all
	jq -e '.ops[0].op == "attr" and .operations == []' <<<"${lines[2]}"
	# the original's pipelines
	run -0 bash -c "'$STATEHOUSECTL' -m '$MNT' replay a --json | jq -r '.operations[].key'"
	assert_output "$(printf '%s\n' plan plan notes/1)"
	run -0 bash -c "'$STATEHOUSECTL' -m '$MNT' replay a --json | jq -c 'select(.operations[].key | startswith(\"notes/\")) | .commit_ts'"
	assert_output 2
	run -0 ctl --json tail a -n 2
	[ "${#lines[@]}" -eq 2 ]
	jq -e '.txn_id == "job-8" and .agent_id == "a" and (.operations | length) == 2' <<<"${lines[0]}"
}

@test "in operations[], a key or value that is not UTF-8 keeps the _base64 rule" {
	printf 'bin\377' >"$MNT/default/a/$(printf 'k\377')"
	run -0 ctl --json replay a
	jq -e --arg k "$(printf 'k\377' | base64)" --arg v "$(printf 'bin\377' | base64)" \
		'.operations == [{"key_base64":$k,"value_base64":$v,"version":1,"deleted":false}]' <<<"$output"
}

@test "dump --format text prints one line per key; json is the default; --output is -o; a bad format is a usage error" {
	ctl put a cfg '{"mode":"fast"}'
	ctl put a note hello
	printf 'raw\377' >"$MNT/default/a/bin"
	run -0 ctl dump a --format text
	assert_output "$(printf '%s\n' '# default/a as of commit_ts 3: 3 keys' 'bin	(4 bytes, not UTF-8)' \
		'cfg	{"mode":"fast"}' 'note	"hello"')"
	[ "$(ctl dump a --format json)" = "$(ctl dump a)" ]
	run -0 ctl dump a --format text --output "$SH_TMP/dump.txt"
	assert_output ''
	[ "$(cat "$SH_TMP/dump.txt")" = "$(ctl dump a --format text)" ]
	run -0 ctl dump a --output "$SH_TMP/dump.json"
	jq -e '.keys.cfg.mode == "fast"' "$SH_TMP/dump.json"
	run -2 --separate-stderr ctl dump a --format yaml
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown --format 'yaml' (json or text)"
	run -2 --separate-stderr ctl --json dump a --format text
	assert_equal "${stderr_lines[0]}" "statehousectl: --format text and --json ask for two different outputs: choose one"
	[ ! -e "$SH_TMP/other" ]
	run -2 --separate-stderr ctl dump a --format text -o "$SH_TMP/other" --json
	[ ! -e "$SH_TMP/other" ]
}

@test "statehousectl(1) and --help name every compatibility alias" {
	man="$REPO_ROOT/doc/statehousectl.1.scd"
	for opt in --namespace --json-output --pretty --start-ts --end-ts --verbose --format --output \
		--lines --follow txn_id agent_id operations; do
		sed -n '/^# COMPATIBILITY/,/^# EXIT STATUS/p' "$man" | grep -q -- "$opt" ||
			fail "statehousectl(1) COMPATIBILITY does not name $opt"
	done
	run -0 ctl help get
	assert_output --partial --json-output
	assert_output --partial --pretty
	run -0 ctl help replay
	assert_output --partial --start-ts
	assert_output --partial --end-ts
	assert_output --partial --verbose
	run -0 ctl help dump
	assert_output --partial '--format text'
	run -0 ctl --help
	assert_output --partial '--namespace'
}

@test "bash completion skips the aliases' values and offers --pretty, --verbose and --format's values" {
	ctl put agent-1 k x
	# shellcheck source=../../contrib/bash-completion/statehousectl
	source "$REPO_ROOT/contrib/bash-completion/statehousectl"
	PATH="$(dirname "$STATEHOUSECTL"):$PATH"
	complete_words() {
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMPREPLY=()
		_statehousectl
		printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | paste -sd' '
	}
	[ "$(complete_words statehousectl -m "$MNT" get agent-1 k --p)" = --pretty ]
	[ "$(complete_words statehousectl -m "$MNT" replay agent-1 --v)" = --verbose ]
	[ "$(complete_words statehousectl -m "$MNT" dump agent-1 --f)" = --format ]
	[ "$(complete_words statehousectl -m "$MNT" dump agent-1 --format '')" = "json text" ]
	[ "$(complete_words statehousectl --namespace default -m "$MNT" get '')" = agent-1 ]
	[ "$(complete_words statehousectl -m "$MNT" replay --start-ts 3 '')" = agent-1 ]
	[ "$(complete_words statehousectl -m "$MNT" get agent-1 --namespace default '')" = k ]
}
