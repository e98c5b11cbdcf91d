#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# statehousectl's state commands through a real mount: get, put, rm, keys, agents,
# history, replay, tail (-f), dump, inspect, txn begin/commit/abort, health, version,
# help, and every error a user can hit with its exit code and message.
# (Mounts, status, fstab and the choice of mount: 66-statehousectl-mounts.bats.)

bats_require_minimum_version 1.5.0

setup() {
	load helper
	sh_default_setup
	unset STATEHOUSE_MOUNT
	A="$MNT/default/a"
	BG_PIDS=()
}

teardown() {
	local p
	# a tail -f blocks in a .follow read: it must go before the unmount
	for p in "${BG_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	sh_default_teardown
}

# ctl ARGS...: statehousectl on this test's mount.
ctl() {
	"$STATEHOUSECTL" -m "$MNT" "$@"
}

# commit_ts_list: the commit_ts of the JSON lines in $output, space-separated.
commit_ts_list() {
	jq -r .commit_ts <<<"$output" | paste -sd' '
}

# tx_state NAME STATE: .tx/NAME/.status reads state STATE.
tx_state() {
	[ "$(jq -r .state "$MNT/.tx/$1/.status")" = "$2" ]
}

# on_tty CMD...: run CMD with stdout and stderr on a pseudo-terminal (script(1)).
on_tty() {
	TERM=xterm script -qec "$(printf '%q ' "$@")" /dev/null
}

# last_commit_ts FILE N: the last line of FILE (JSON Lines) has commit_ts N.
last_commit_ts() {
	[ "$(tail -n 1 "$1" | jq -r .commit_ts)" = "$2" ]
}

# --- get, put, rm ------------------------------------------------------------------------

@test "put commits a value from its argument, from '-' and from stdin, and get prints it byte for byte" {
	run -0 ctl put a greeting hello
	assert_output ''
	printf hello | cmp - "$A/greeting"
	run -0 ctl get a greeting
	assert_output hello
	printf 'a\0b\377\n' >"$SH_TMP/bin"
	ctl put a bin - <"$SH_TMP/bin"
	cmp "$SH_TMP/bin" "$A/bin"
	ctl get a bin | cmp - "$SH_TMP/bin"
	printf 'from stdin' | ctl put a piped
	run -0 ctl get a piped
	assert_output 'from stdin'
	[ "$(sh_xattr version "$A/greeting")" = 1 ]
	ctl put a greeting again
	[ "$(sh_xattr version "$A/greeting")" = 2 ]
	# a value that begins with '-' goes after --; an empty value is a value
	run -2 --separate-stderr ctl put a neg -5
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown option '-5'"
	ctl put a neg -- -5
	run -0 ctl get a neg
	assert_output -- -5
	ctl put a empty ''
	sh_wait_until 10 test -e "$A/empty"
	[ ! -s "$A/empty" ]
}

@test "get --json shows version and commit_ts with the value: JSON as JSON, text as a string, other bytes as value_base64" {
	ctl put a j '{"x": [1, 2]}'
	ctl put a t 'plain text'
	printf '\377\376' | ctl put a b
	run -0 ctl get a j --json
	jq -e --argjson ts "$(sh_xattr commit_ts "$A/j")" \
		'. == {"namespace":"default","agent":"a","key":"j","version":1,"commit_ts":$ts,"value":{"x":[1,2]}}' <<<"$output"
	run -0 ctl --json get a t
	jq -e '.value == "plain text"' <<<"$output"
	run -0 ctl --json get a b
	jq -e '.value_base64 == "//4=" and (has("value") | not)' <<<"$output"
}

@test "rm commits a delete; get and rm of the deleted key then fail with exit 1 and 'no key'" {
	ctl put a k v
	run -0 ctl rm a k
	assert_output ''
	[ ! -e "$A/k" ]
	[ "$(tail -n 1 "$MNT/.events/default/a.jsonl" | jq -c '.ops[0] | [.op, .key, .version]')" = '["delete","k",2]' ]
	run -1 --separate-stderr ctl get a k
	assert_equal "$stderr" "statehousectl: no key 'k' for agent 'a' in namespace 'default'"
	run -1 --separate-stderr ctl rm a k
	assert_equal "$stderr" "statehousectl: no key 'k' for agent 'a' in namespace 'default'"
}

@test "a key that is a prefix of other keys cannot be read, written or removed as a key (exit 1, EISDIR)" {
	ctl put a dir/k v
	run -1 --separate-stderr ctl get a dir
	assert_equal "$stderr" "statehousectl: cannot read key 'dir' of agent 'a': it is a prefix of other keys: Is a directory"
	run -1 --separate-stderr ctl put a dir x
	assert_equal "$stderr" "statehousectl: cannot write key 'dir' of agent 'a': it is a prefix of other keys: Is a directory"
	run -1 --separate-stderr ctl put a dir/k/deeper x
	assert_equal "$stderr" "statehousectl: cannot write key 'dir/k/deeper' of agent 'a': a prefix of it is a key: Not a directory"
	run -0 ctl get a dir/k
	assert_output v
}

@test "every command that names an unknown agent fails with exit 1 and \"no agent 'x' in namespace 'default'\"" {
	ctl put real k v
	local cmd
	for cmd in "get x k" "rm x k" "keys x" "history x k" "replay x" "tail x" "tail x -f" \
		"dump x" "inspect x"; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr ctl $cmd
		assert_equal "$stderr" "statehousectl: no agent 'x' in namespace 'default'"
		assert_output ''
	done
	run -1 --separate-stderr ctl --ns other get real k
	assert_equal "$stderr" "statehousectl: no agent 'real' in namespace 'other'"
}

@test "--ns selects the namespace, and -m, --ns and --json work before and after the command" {
	ctl --ns team put a k one
	ctl put a k two
	[ "$(cat "$MNT/team/a/k")" = one ]
	[ "$(cat "$A/k")" = two ]
	run -0 "$STATEHOUSECTL" get a k --ns team -m "$MNT"
	assert_output one
	run -0 "$STATEHOUSECTL" get a k -m "$MNT"
	assert_output two
	run -0 "$STATEHOUSECTL" --ns team agents --json -m "$MNT"
	assert_output '["a"]'
	run -0 ctl replay a --ns team --json
	jq -e '.ops[0].ns == "team" and .ops[0].value == "one"' <<<"$output"
}

@test "a malformed key, agent, namespace or transaction name is a usage error (exit 2) that says what is wrong" {
	local empty="it has an empty path component (a leading, trailing or double '/')" k
	for k in 'a//b' '/a' 'a/'; do
		run -2 --separate-stderr ctl put a "$k" v
		assert_equal "${stderr_lines[0]}" "statehousectl: invalid key '$k': $empty"
		assert_equal "${stderr_lines[1]}" "usage: statehousectl put AGENT KEY [VALUE | -] [--if-version N | --if-absent]"
	done
	run -2 --separate-stderr ctl get a 'x/../y'
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid key 'x/../y': it has a '.' or '..' path component"
	run -2 --separate-stderr ctl get a ''
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid key '': it is empty"
	k="$(sh_longname 256)"
	run -2 --separate-stderr ctl get a "$k"
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid key '$k': a path component is longer than 255 bytes"
	k="$(sh_longname 200)/$(sh_longname 200)/$(sh_longname 200)/$(sh_longname 200)/$(sh_longname 200)/$(sh_longname 20)"
	run -2 --separate-stderr ctl history a "$k"
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid key '$k': it is longer than 1024 bytes"
	run -2 --separate-stderr ctl keys .hidden
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid agent '.hidden': it begins with '.'"
	run -2 --separate-stderr ctl replay x/y
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid agent 'x/y': it contains '/'"
	run -2 --separate-stderr ctl --ns '' get a k
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid namespace '': it is empty"
	run -2 --separate-stderr ctl txn begin .t
	assert_equal "${stderr_lines[0]}" "statehousectl: invalid transaction name '.t': it begins with '.'"
	# nothing reached the mount
	[ -z "$(ls "$MNT")" ]
}

@test "put of a value over max_value_bytes fails with EFBIG, exit 1, and commits nothing" {
	sh_remount -o max_value_bytes=16
	ctl put a k small
	run -1 --separate-stderr ctl put a k 'this value is longer than sixteen bytes'
	assert_equal "$stderr" "statehousectl: cannot write key 'k' of agent 'a': File too large (the value is over the daemon's max_value_bytes)"
	run -0 ctl get a k
	assert_output small
	[ "$(sh_xattr version "$A/k")" = 1 ]
}

@test "put reports a commit that fails at close (EIO) with exit 1, and health then fails with exit 3" {
	sh_umount
	export STATEHOUSE_FAULT=after=1,code=eio
	sh_mount
	unset STATEHOUSE_FAULT
	ctl put a k first
	run -1 --separate-stderr ctl put a k second
	assert_equal "$stderr" "statehousectl: cannot write key 'k' of agent 'a': Input/output error"
	run -0 ctl get a k
	assert_output first
	run -3 --separate-stderr ctl health
	assert_equal "$stderr" "statehousectl: cannot read '$MNT/.health': Input/output error"
}

# --- keys, agents, health, version ---------------------------------------------------------

@test "keys walks keys with '/' as subdirectories, sorted; --prefix filters and --json is an array" {
	ctl put a step/002 y
	ctl put a step/001 x
	ctl put a step/sub/003 z
	ctl put a other w
	run -0 ctl keys a
	assert_output "$(printf 'other\nstep/001\nstep/002\nstep/sub/003')"
	run -0 ctl keys a --prefix step/
	assert_output "$(printf 'step/001\nstep/002\nstep/sub/003')"
	run -0 ctl keys a --prefix step/s
	assert_output step/sub/003
	run -0 ctl keys a --prefix ot --json
	assert_output '["other"]'
	run -0 ctl keys a --prefix nothing
	assert_output ''
	# an agent whose keys are all deleted is still known: no keys, exit 0
	for k in other step/001 step/002 step/sub/003; do ctl rm a "$k"; done
	run -0 ctl --json keys a
	assert_output '[]'
}

@test "agents lists the agents of the namespace that hold keys" {
	ctl put b k v
	ctl put a k v
	ctl --ns other put c k v
	run -0 ctl agents
	assert_output "$(printf 'a\nb')"
	run -0 ctl agents --ns other --json
	assert_output '["c"]'
	run -0 ctl agents --ns empty
	assert_output ''
}

@test "health prints ok with exit 0; version prints statehousectl's and the daemon's versions" {
	run -0 ctl health
	assert_output ok
	run -0 ctl health --json
	jq -e --arg m "$MNT" '. == {"mountpoint":$m,"health":"ok"}' <<<"$output"
	v="$(jq -r .version "$MNT/.version")" sha="$(jq -r .git_sha "$MNT/.version")"
	run -0 ctl version
	assert_line -n 0 "statehousectl $v (git $sha)"
	assert_line -n 1 "$(jq -r '"statehoused \(.version) (git \(.git_sha), schema \(.schema), sqlite \(.sqlite), libfuse \(.libfuse))"' "$MNT/.version")"
	run -0 ctl --json version
	jq -e --arg v "$v" --arg sha "$sha" --argjson d "$(cat "$MNT/.version")" '. == {"statehousectl":$v,"git_sha":$sha,"daemon":$d}' <<<"$output"
	run -0 "$STATEHOUSECTL" --version
	assert_output "statehousectl $v (git $sha)"
}

# --- history, replay, tail -----------------------------------------------------------------

@test "history lists every version of a key with time, commit_ts, op, size, txn and value; --json passes index.jsonl through" {
	# commit 1 makes the directory dir/ (a directory is state), the key's versions follow
	ctl put a 'dir/50%' one
	ctl rm a 'dir/50%'
	ctl put a 'dir/50%' '{"n":3}'
	run -0 ctl history a 'dir/50%'
	[ "${#lines[@]}" -eq 3 ]
	assert_line -n 0 -e '^v1 +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +#2 +put +3 B +txn auto +"one"$'
	assert_line -n 1 -e '^v2 +.*Z +#3 +delete +0 B +txn auto +\(deleted\)$'
	assert_line -n 2 -e '^v3 +.*Z +#4 +put +7 B +txn auto +\{"n":3\}$'
	run -0 ctl --json history a 'dir/50%'
	assert_output "$(cat "$MNT/.history/default/a/dir%2F50%25/index.jsonl")"
	run -1 --separate-stderr ctl history a never
	assert_equal "$stderr" "statehousectl: no key 'never' ever for agent 'a' in namespace 'default'"
}

@test "replay prints one line per op (time, commit_ts, agent, op, key, version, value); --json passes the event lines through, the original's fields added" {
	ctl put a k1 v1
	T="$MNT/.tx/t"
	mkdir "$T"
	echo '{"n":2}' >"$T/default/a/k2"
	echo other >"$T/default/b/x"
	sh_commit "$T"
	ctl rm a k1
	printf '\377' | ctl put a bin
	chmod 750 "$A"
	run -0 ctl --json replay a
	# (the fields of the original statehousectl: 64-statehousectl-compat.bats)
	[ "$(jq -c 'del(.txn_id, .namespace, .agent_id, .operations)' <<<"$output")" = \
		"$(jq -c . "$MNT/.events/default/a.jsonl")" ]
	run -0 ctl replay a
	[ "${#lines[@]}" -eq 5 ]
	assert_line -n 0 -e '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z +#1 +a +put +k1 +v1 +"v1"$'
	assert_line -n 1 -e '^.*Z +#2 +a +put +k2 +v1 +\{"n":2\}$'
	assert_line -n 2 -e '^.*Z +#3 +a +delete +k1 +v2 +\(deleted\)$'
	assert_line -n 3 -e '^.*Z +#4 +a +put +bin +v1 +\(1 bytes, not UTF-8\)$'
	# an owner or mode change of the agent names no key or version
	assert_line -n 4 -e '^.*Z +#5 +a +attr +- +- +\{"uid":0,"gid":0,"mode":"0750"\}$'
}

@test "replay --since, --until and --limit select commits by commit_ts" {
	for i in 1 2 3 4 5 6; do ctl put a k "$i"; done
	run -0 ctl --json replay a --since 3
	[ "$(commit_ts_list)" = "3 4 5 6" ]
	run -0 ctl --json replay a --since 2 --until 4
	[ "$(commit_ts_list)" = "2 3 4" ]
	run -0 ctl --json replay a --limit 2
	[ "$(commit_ts_list)" = "1 2" ]
	run -0 ctl --json replay a --since 5 --limit 10
	[ "$(commit_ts_list)" = "5 6" ]
	run -0 ctl --json replay a --until 1
	[ "$(commit_ts_list)" = "1" ]
	run -0 ctl replay a --since 100
	assert_output ''
}

@test "a malformed commit_ts, count or timeout is a usage error (exit 2) naming it" {
	ctl put a k v
	local ts
	for ts in 0 -1 abc 1x 99999999999999999999 ''; do
		run -2 --separate-stderr ctl replay a --since "$ts"
		assert_equal "${stderr_lines[0]}" "statehousectl: malformed commit_ts '$ts' for --since (a positive integer)"
	done
	run -2 --separate-stderr ctl replay a --until x
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed commit_ts 'x' for --until (a positive integer)"
	run -2 --separate-stderr ctl replay a --since 3 --until 2
	assert_equal "${stderr_lines[0]}" "statehousectl: --until 2 is before --since 3"
	run -2 --separate-stderr ctl replay a --limit 0
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed --limit '0' (a positive number)"
	run -2 --separate-stderr ctl tail a -n x
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed -n 'x' (a number of commits)"
	run -2 --separate-stderr ctl txn begin t --timeout-ms 0
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed --timeout-ms '0' (1..86400000)"
	run -2 --separate-stderr "$STATEHOUSECTL" umount "$MNT" --timeout soon
	assert_equal "${stderr_lines[0]}" "statehousectl: malformed --timeout 'soon' (seconds, 0 for no limit)"
}

@test "tail prints the agent's last N commits, 10 by default; -n 0 prints none" {
	for i in $(seq 1 12); do ctl put a k "$i"; done
	run -0 ctl --json tail a
	[ "$(commit_ts_list)" = "3 4 5 6 7 8 9 10 11 12" ]
	run -0 ctl --json tail a -n 3
	[ "$(commit_ts_list)" = "10 11 12" ]
	run -0 ctl tail a -n 0
	assert_output ''
	run -0 ctl tail a -n 2
	[ "${#lines[@]}" -eq 2 ]
	assert_line -n 1 -e '#12 +a +put +k +v12 +12$'
}

@test "tail -f prints the last commits, then every new one: none missed or printed twice while commits race it" {
	ctl put a k 0
	(for i in $(seq 1 40); do echo "$i" >"$A/k"; done) 3>&- &
	writer=$!
	"$STATEHOUSECTL" -m "$MNT" --json tail a -n 1000 -f >"$SH_TMP/out" 2>"$SH_TMP/err" 3>&- &
	BG_PIDS+=($!)
	wait "$writer"
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 41
	ctl put a k 42
	sh_wait_until 20 last_commit_ts "$SH_TMP/out" 42
	[ "$(jq -r .commit_ts "$SH_TMP/out" | paste -sd' ')" = "$(seq 1 42 | paste -sd' ')" ]
	[ ! -s "$SH_TMP/err" ]
}

# --- dump, inspect -------------------------------------------------------------------------

@test "dump prints every key as of the head commit as one JSON object: JSON as JSON, text as strings, other bytes in keys_base64" {
	ctl put a j '{"x":1}'
	ctl put a n 42
	ctl put a t 'hello world'
	ctl put a d/deep '[true]'
	printf '\377' | ctl put a bin
	ctl put b other x
	head="$(jq .head_commit_ts "$MNT/.status")"
	[ "$head" -eq 7 ] # six keys, and the directory d/ (a directory is state)
	run -0 ctl --json dump a
	[ "${#lines[@]}" -eq 1 ]
	jq -e --argjson h "$head" '. == {"commit_ts":$h,"namespace":"default","agent":"a",
		"keys":{"d/deep":[true],"j":{"x":1},"n":42,"t":"hello world"},"keys_base64":{"bin":"/w=="}}' <<<"$output"
	compact="$output"
	run -0 ctl dump a
	[ "${#lines[@]}" -gt 1 ]
	[ "$(jq -cS . <<<"$output")" = "$(jq -cS . <<<"$compact")" ]
}

@test "dump reads one commit: while transactions rewrite every key, each dump holds the values of one commit" {
	# commit_loop.py commits a, b and c of agent w together, with the same value each time
	"$SH_PYTHON" "$REPO_ROOT/test/bats/commit_loop.py" "$MNT" w "$SH_TMP/ack" \
		2>>"$SH_TMP/loop.log" 3>&- &
	BG_PIDS+=($!)
	sh_wait_until 20 test -s "$SH_TMP/ack"
	for d in 1 2 3 4 5; do
		ctl --json dump w >"$SH_TMP/dump$d"
		jq -e '(.keys | length) == 3 and .keys.a == .keys.b and .keys.b == .keys.c' "$SH_TMP/dump$d"
		ts="$(jq .commit_ts "$SH_TMP/dump$d")"
		[ "$(jq .keys.a "$SH_TMP/dump$d")" = "$(cat "$MNT/.at/$ts/default/w/a")" ]
	done
}

@test "dump -o writes the file atomically: the old file is replaced whole, its mode kept, no temporary file left" {
	ctl put a k v
	echo old >"$SH_TMP/out.json"
	chmod 640 "$SH_TMP/out.json"
	ino="$(stat -c %i "$SH_TMP/out.json")"
	run -0 ctl dump a -o "$SH_TMP/out.json"
	assert_output ''
	jq -e '.keys.k == "v" and .agent == "a"' "$SH_TMP/out.json"
	[ "$(stat -c %i "$SH_TMP/out.json")" != "$ino" ]
	[ "$(stat -c %a "$SH_TMP/out.json")" = 640 ]
	[ "$(ls "$SH_TMP" | grep -c '^out\.json')" -eq 1 ]
	run -1 --separate-stderr ctl dump a -o "$SH_TMP/nodir/x.json"
	assert_equal "$stderr" "statehousectl: cannot write '$SH_TMP/nodir/x.json': No such file or directory"
}

@test "names that are not UTF-8 read back as the same bytes: replay, history, inspect, get, keys, dump and a conflict" {
	N=$'n\xfes' G=$'a\xfdg' K=$'k\xfc'
	ctl --ns "$N" put "$G" "$K/x" v1
	ctl --ns "$N" txn begin $'t\xff'
	echo v2 >"$MNT/.tx/"$'t\xff'"/$N/$G/$K/x"
	ctl --ns "$N" txn commit $'t\xff'
	# the daemon wrote ns_base64, agent_base64, key_base64, txn_base64; the bytes come back
	run -0 ctl --ns "$N" replay "$G"
	[ "${#lines[@]}" -eq 3 ]
	assert_line -n 1 -e "^.*Z +#2 +$G +put +$K/x +v1 +\"v1\"\$"
	assert_line -n 2 -e "^.*Z +#3 +$G +put +$K/x +v2 +\"v2.n\"\$"
	run -0 ctl --ns "$N" history "$G" "$K/x"
	assert_line -n 1 -e "^v2 +.*Z +#3 +put +3 B +txn t"
	[[ "${lines[1]}" = *"txn "$'t\xff'" "* ]]
	run -0 ctl --ns "$N" inspect "$G"
	assert_line -n 0 "agent          $N/$G"
	assert_line -n 9 -e "^  .*#3 +$G +put +$K/x +v2 +\"v2.n\"\$"
	# statehousectl's own JSON follows the daemon's rule
	run -0 ctl --json --ns "$N" inspect "$G"
	jq -e '.namespace_base64 == "bv5z" and .agent_base64 == "Yf1n" and
		(.recent | map([.key_base64, .txn, .txn_base64])) ==
		[["a/w=", "auto", null], ["a/wveA==", "auto", null], ["a/wveA==", null, "dP8="]]' <<<"$output"
	run -0 ctl --json --ns "$N" get "$G" "$K/x"
	assert_output '{"namespace_base64":"bv5z","agent_base64":"Yf1n","key_base64":"a/wveA==","version":2,"commit_ts":3,"value":"v2\n"}'
	ctl --ns "$N" put "$G" plain p
	run -0 ctl --json --ns "$N" keys "$G"
	assert_output '[{"base64":"a/wveA=="},"plain"]'
	run -0 ctl --json --ns "$N" agents
	assert_output '[{"base64":"Yf1n"}]'
	run -0 ctl --json --ns "$N" dump "$G"
	assert_output '{"commit_ts":4,"namespace_base64":"bv5z","agent_base64":"Yf1n","keys":{"plain":"p"},"other_keys":[{"key_base64":"a/wveA==","value":"v2\n"}]}'
	# a conflict names the key in the transaction's .status as key_base64
	ctl txn begin c1
	ctl txn begin c2
	echo 1 >"$MNT/.tx/c1/$N/$G/$K/x"
	echo 2 >"$MNT/.tx/c2/$N/$G/$K/x"
	ctl txn commit c1
	run -1 --separate-stderr ctl txn commit c2
	assert_equal "$stderr" "statehousectl: cannot commit transaction 'c2': conflict: another transaction committed key '$N/$G/$K/x' since this one began (Stale file handle)"
}

@test "inspect shows the key count, commits, ops, first and last commit and the last five ops, as of the head" {
	ctl put a k1 v1
	ctl put a k2 v2
	ctl rm a k1
	ctl put b x y
	T="$MNT/.tx/t"
	mkdir "$T"
	echo 4 >"$T/default/a/k4"
	echo 5 >"$T/default/a/k5"
	sh_commit "$T"
	ctl put a k2 v2b
	run -0 ctl --json inspect a
	jq -e '.namespace == "default" and .agent == "a" and .commit_ts == 6 and .keys == 3 and
		.commits == 5 and .ops == 6 and .first.commit_ts == 1 and .last.commit_ts == 6 and
		(.recent | map([.commit_ts, .op, .key, .version])) ==
		[[2,"put","k2",1],[3,"delete","k1",2],[5,"put","k4",1],[5,"put","k5",1],[6,"put","k2",2]] and
		.recent[2].txn == "t"' <<<"$output"
	run -0 ctl inspect a
	assert_line -n 0 -e '^agent +default/a$'
	assert_line -n 1 -e '^as of +commit_ts 6 \(the head\)$'
	assert_line -n 2 -e '^keys +3$'
	assert_line -n 3 -e '^commits +5 \(6 ops\)$'
	assert_line -n 4 -e '^first commit +#1 at [0-9]{4}-.*Z$'
	assert_line -n 5 -e '^last commit +#6 at [0-9]{4}-.*Z$'
	assert_line -n 6 'recent ops:'
	assert_line -n 11 -e '^  .*#6 +a +put +k2 +v2 +"v2b"$'
}

# --- transactions --------------------------------------------------------------------------

@test "txn begin prints the name and directory; what is staged there appears at one commit_ts on txn commit, which removes the directory" {
	run -0 ctl txn begin job-1
	assert_output "$(printf 'job-1\t%s/.tx/job-1' "$MNT")"
	echo 1 >"$MNT/.tx/job-1/default/a/x"
	echo 2 >"$MNT/.tx/job-1/default/a/y"
	[ ! -e "$A/x" ]
	run -0 ctl txn commit job-1
	assert_output -e '^[0-9]+$'
	[ "$(sh_xattr commit_ts "$A/x")" = "$output" ]
	[ "$(sh_xattr commit_ts "$A/y")" = "$output" ]
	[ ! -e "$MNT/.tx/job-1" ]
}

@test "txn begin without a name generates one; txn commit --note records the note and --keep keeps the directory" {
	run -0 ctl --json txn begin
	name="$(jq -r .txn <<<"$output")"
	[[ "$name" =~ ^ctl-[0-9]{8}T[0-9]{6}-[0-9]+-[0-9a-f]{4}$ ]]
	jq -e --arg p "$MNT/.tx/$name" '.path == $p' <<<"$output"
	[ -d "$MNT/.tx/$name" ]
	echo v >"$MNT/.tx/$name/default/a/k"
	run -0 ctl --json txn commit "$name" --note '{"why":"test"}' --keep
	jq -e --arg n "$name" '.txn == $n and .ops == 1 and (.commit_ts | type) == "number"' <<<"$output"
	[ -d "$MNT/.tx/$name" ]
	jq -e '.note == {"why":"test"}' <(tail -n 1 "$MNT/.events/all.jsonl")
	run -1 --separate-stderr ctl txn commit "$name"
	assert_equal "$stderr" "statehousectl: cannot commit transaction '$name': it is already committed (commit_ts 1)"
	run -0 ctl txn abort "$name"
	[ ! -e "$MNT/.tx/$name" ]
}

@test "txn begin of a taken name fails with EEXIST and beyond max_open_txns with EAGAIN; commit and abort of no transaction fail (exit 1)" {
	sh_remount -o max_open_txns=1
	ctl txn begin t1
	run -1 --separate-stderr ctl txn begin t1
	assert_equal "$stderr" "statehousectl: cannot begin transaction 't1': the name is taken: File exists"
	run -1 --separate-stderr ctl txn begin t2
	assert_equal "$stderr" "statehousectl: cannot begin transaction 't2': too many open transactions: Resource temporarily unavailable"
	run -1 --separate-stderr ctl txn commit nope
	assert_equal "$stderr" "statehousectl: no transaction 'nope'"
	run -1 --separate-stderr ctl txn abort nope
	assert_equal "$stderr" "statehousectl: no transaction 'nope'"
}

@test "txn commit of a transaction that lost a conflict fails with exit 1, names the key, applies nothing and removes it" {
	ctl put a k base
	ctl txn begin t1
	ctl txn begin t2
	echo one >"$MNT/.tx/t1/default/a/k"
	echo two >"$MNT/.tx/t2/default/a/k"
	echo extra >"$MNT/.tx/t2/default/a/e"
	ctl txn commit t1
	run -1 --separate-stderr ctl txn commit t2
	assert_equal "$stderr" "statehousectl: cannot commit transaction 't2': conflict: another transaction committed key 'default/a/k' since this one began (Stale file handle)"
	run -0 ctl get a k
	assert_output one
	[ ! -e "$A/e" ]
	[ ! -e "$MNT/.tx/t2" ]
}

@test "txn begin --timeout-ms sets the timeout; a commit after it fails as expired (exit 1) and applies nothing" {
	ctl put a k v
	ctl txn begin t --timeout-ms 300
	[ "$(cat "$MNT/.tx/t/.timeout_ms")" = 300 ]
	sh_wait_until 10 tx_state t expired
	run -1 --separate-stderr ctl txn commit t
	assert_equal "$stderr" "statehousectl: cannot commit transaction 't': expired: the transaction outlived its timeout (Connection timed out)"
	[ "$(jq .head_commit_ts "$MNT/.status")" -eq 1 ]
	[ ! -e "$MNT/.tx/t" ]
}

@test "txn abort discards what the transaction staged" {
	ctl put a k before
	ctl txn begin t
	echo after >"$MNT/.tx/t/default/a/k"
	echo new >"$MNT/.tx/t/default/a/n"
	run -0 ctl txn abort t
	assert_output ''
	[ ! -e "$MNT/.tx/t" ]
	run -0 ctl get a k
	assert_output before
	[ ! -e "$A/n" ]
}

# --- help, usage, terminals ----------------------------------------------------------------

@test "every command prints its help with --help and with 'help CMD' (exit 0)" {
	local cmd
	for cmd in mount umount status fstab backup health version get put rm keys agents history \
		replay tail dump inspect "txn begin" "txn commit" "txn abort"; do
		# shellcheck disable=SC2086
		help="$("$STATEHOUSECTL" $cmd --help)"
		[[ "$help" == "usage: statehousectl $cmd"* ]]
		[[ "$help" == *$'\n  -m, --mount MOUNTPOINT  the statehouse mount to use'* ]]
		# shellcheck disable=SC2086
		[ "$("$STATEHOUSECTL" help $cmd)" = "$help" ]
	done
	run -0 "$STATEHOUSECTL" --help
	assert_line 'commands:'
	assert_line '  txn commit NAME [--note TEXT] [--keep]'
	run -0 "$STATEHOUSECTL" help
	assert_line 'commands:'
	run -0 "$STATEHOUSECTL" txn --help
	assert_line -n 0 'usage: statehousectl txn begin|commit|abort ...'
	run -0 "$STATEHOUSECTL" help txn
	assert_line '  txn abort NAME'
}

@test "usage errors exit 2 with one reason: no command, an unknown command or option, a missing value, a missing or extra argument" {
	run -2 --separate-stderr "$STATEHOUSECTL"
	assert_equal "${stderr_lines[0]}" "usage: statehousectl [-m MOUNTPOINT] [--ns NS] [--json] COMMAND [ARGS]"
	run -2 --separate-stderr "$STATEHOUSECTL" frobnicate
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown command 'frobnicate'"
	run -2 --separate-stderr "$STATEHOUSECTL" --bogus
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown option '--bogus'"
	run -2 --separate-stderr ctl get a
	assert_equal "${stderr_lines[0]}" "statehousectl: missing arguments"
	assert_equal "${stderr_lines[1]}" "usage: statehousectl get AGENT KEY"
	assert_equal "${stderr_lines[2]}" "(statehousectl get --help for more)"
	run -2 --separate-stderr ctl get a k extra
	assert_equal "${stderr_lines[0]}" "statehousectl: too many arguments"
	run -2 --separate-stderr ctl keys a --bogus
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown option '--bogus'"
	run -2 --separate-stderr ctl tail a -x
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown option '-x'"
	run -2 --separate-stderr ctl tail a -n
	assert_equal "${stderr_lines[0]}" "statehousectl: option '-n' needs a value"
	run -2 --separate-stderr ctl keys
	assert_equal "${stderr_lines[0]}" "statehousectl: missing AGENT"
	run -2 --separate-stderr "$STATEHOUSECTL" txn
	assert_equal "${stderr_lines[0]}" "usage: statehousectl txn begin|commit|abort ..."
	run -2 --separate-stderr "$STATEHOUSECTL" txn frob
	assert_equal "${stderr_lines[0]}" "statehousectl: unknown command 'txn frob'"
	run -2 --separate-stderr "$STATEHOUSECTL" help nope
	assert_equal "${stderr_lines[0]}" "statehousectl: no command 'nope'"
	run -2 --separate-stderr ctl txn commit
	assert_equal "${stderr_lines[0]}" "statehousectl: missing NAME"
}

@test "colour only when stdout is a terminal and NO_COLOR is unset; progress only when stderr is a terminal" {
	ctl put a k v
	run -0 on_tty "$STATEHOUSECTL" -m "$MNT" replay a
	[[ "$output" == *$'\e[32mput'* ]]
	run -0 env NO_COLOR=1 TERM=xterm script -qec "$(printf '%q ' "$STATEHOUSECTL" -m "$MNT" replay a)" /dev/null
	[[ "$output" == *' put '* ]]
	[[ "$output" != *$'\e['*m* ]]
	run -0 ctl replay a
	[[ "$output" != *$'\e'* ]]
	# progress: dump to a file and replay into a pipe, with stderr on the terminal
	run -0 on_tty "$STATEHOUSECTL" -m "$MNT" dump a -o "$SH_TMP/d.json"
	[[ "$output" == *'dump: 0 of 1 keys'* ]]
	run -0 on_tty sh -c "\"\$0\" -m \"\$1\" replay a >/dev/null" "$STATEHOUSECTL" "$MNT"
	[[ "$output" == *'replay: 1 commits, 100%'* ]]
	run -0 --separate-stderr ctl dump a -o "$SH_TMP/d.json"
	assert_equal "$stderr" ''
	run -0 --separate-stderr ctl replay a
	assert_equal "$stderr" ''
}

@test "the README's statehousectl lines run as written: status, put, get, replay, inspect and dump" {
	# The indented lines after "From a terminal" in README.md, on this test's mount.
	mapfile -t cmds < <(awk '/^From a terminal, `statehousectl`/ { on = 1; next }
		on && /^    / { print substr($0, 5); seen = 1; next } on && seen && /^[^ ]/ { exit }' \
		"$REPO_ROOT/README.md" | sed 's/ *# .*$//')
	[ "${#cmds[@]}" -eq 7 ] || fail "the README block changed: ${cmds[*]}"
	[ "${cmds[0]}" = 'export STATEHOUSE_MOUNT=~/state' ]
	readme() {
		STATEHOUSE_MOUNT=$MNT
		export STATEHOUSE_MOUNT
		statehousectl() { "$STATEHOUSECTL" "$@"; }
		eval "$1"
	}
	run -0 readme "${cmds[1]}"
	assert_line "$MNT: live"
	run -0 readme "${cmds[2]}"
	run -0 readme "${cmds[3]}"
	assert_output '{"step":1}'
	run -0 readme "${cmds[4]}"
	assert_line --regexp '#1 +agent-1 +put +plan +v1 +\{"step":1\}$'
	run -0 readme "${cmds[5]}"
	assert_line --regexp '^keys +1$'
	run -0 readme "${cmds[6]}"
	[ "$(jq -c '[.commit_ts, .keys.plan]' <<<"$output")" = '[1,{"step":1}]' ]
}
