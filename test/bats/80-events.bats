#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The event log as files: .events/all.jsonl, .events/<ns>/<agent>.jsonl, .events/since/<ts>/
# and their live twins under .follow/ (a read at the end blocks until the next commit).
# The past as files: ".events", ".follow", "the past is immutable" and "Errors".

setup() {
	load helper
	load follow_helper
	sh_default_setup
	A="$MNT/default/agent-1"
	B="$MNT/default/agent-2"
	EV="$MNT/.events"
	FO="$MNT/.follow"
	BG_PIDS=()
}

teardown() {
	sh_kill_bg
	sh_default_teardown
}

# ev_check TS FILTER [FILE]: the one line of FILE (default all.jsonl) with commit_ts TS
# satisfies jq -e FILTER.
ev_check() {
	local ts=$1 filter=$2 file=${3:-$EV/all.jsonl} out="$SH_TMP/ev.$1"
	jq -c --argjson t "$ts" 'select(.commit_ts == $t)' "$file" >"$out" || return 1
	if [ "$(wc -l <"$out")" -ne 1 ]; then
		echo "expected exactly one line with commit_ts $ts in $file, got: $(cat "$out")" >&2
		return 1
	fi
	sh_jq "$filter" "$out"
}

# agent_view NS AGENT FILE: what NS/AGENT's event file must hold, derived from the full log
# FILE: the transactions that touched it, with only its ops (jq -c form).
agent_view() {
	jq -c --arg ns "$1" --arg ag "$2" \
		'select(any(.ops[]; .ns == $ns and .agent == $ag)) | .ops |= map(select(.ns == $ns and .agent == $ag))' "$3"
}

RFC3339_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$'

# An open .events file: 0 bytes before anyone read that stream to its end (its size is not
# rendered for a stat), then the size read; it grows with each commit, and a read from the
# old end returns exactly the new line. Argv: EVENTS_FILE KEY_TO_WRITE.
PY_GROW='
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("size before a read", os.fstat(fd).st_size)
data = b""
while True:
    b = os.read(fd, 65536)
    if not b:
        break
    data += b
s0 = os.fstat(fd).st_size
print("read to the end", len(data) == s0, data.count(b"\n"))
with open(sys.argv[2], "w") as f:
    f.write("grown\n")
s1 = os.fstat(fd).st_size
new = os.pread(fd, 65536, s0)
print("grew", s1 > s0, "new bytes", len(new) == s1 - s0, "new lines", new.count(b"\n"))
print(new.decode(), end="")
'

# --- each kind of value, note and transaction as one exact line --------------------------

@test "a direct write of valid JSON appears in all.jsonl as one line whose value is that JSON" {
	echo '{"a":1}' >"$A/obj"
	t1="$(sh_xattr commit_ts "$A/obj")"
	echo 42 >"$A/num"
	echo '[1, "x", {"b": [true, false]}]' >"$A/arr"
	echo '"quoted"' >"$A/str"
	echo null >"$A/null"
	printf '\t{"s": "\303\251"}\n ' >"$A/ws"
	t6="$(sh_xattr commit_ts "$A/ws")"
	[ "$t6" -eq $((t1 + 5)) ]
	ev_check "$t1" "del(.time) == {commit_ts: $t1, txn: \"auto\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"obj\", op: \"put\", version: 1, value: {a: 1}}]}"
	ev_check $((t1 + 1)) "del(.time) == {commit_ts: $((t1 + 1)), txn: \"auto\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"num\", op: \"put\", version: 1, value: 42}]}"
	ev_check $((t1 + 2)) '.ops == [{ns: "default", agent: "agent-1", key: "arr", op: "put", version: 1, value: [1, "x", {b: [true, false]}]}]'
	ev_check $((t1 + 3)) '.ops == [{ns: "default", agent: "agent-1", key: "str", op: "put", version: 1, value: "quoted"}]'
	# JSON null is a value null, not a missing value
	ev_check $((t1 + 4)) '.ops == [{ns: "default", agent: "agent-1", key: "null", op: "put", version: 1, value: null}] and (.ops[0] | has("value"))'
	ev_check "$t6" '.ops == [{ns: "default", agent: "agent-1", key: "ws", op: "put", version: 1, value: {s: "é"}}]'
	# every line's time is RFC 3339 UTC and is the version's time in .history
	sh_jq "[., inputs] | length == 6 and all(.time | test(\"$RFC3339_RE\"))" "$EV/all.jsonl"
	for k in obj num arr str null ws; do
		[ "$(jq -r --arg k "$k" 'select(.ops[0].key == $k) | .time' "$EV/all.jsonl")" = \
			"$(jq -r .time "$MNT/.history/default/agent-1/$k/index.jsonl")" ]
	done
}

@test "a value that is UTF-8 text but not JSON appears as a JSON string of the text with its newline" {
	echo hello >"$A/text"
	t1="$(sh_xattr commit_ts "$A/text")"
	printf 'say "hi"\t\\\n' >"$A/esc"
	printf 'h\303\251llo \342\234\223\n' >"$A/uni"
	printf 'a\0b' >"$A/nul"
	echo 01 >"$A/lead0"
	echo '{"a":1} x' >"$A/trail"
	echo NaN >"$A/nan"
	printf 'no newline' >"$A/plain"
	: >"$A/empty"
	sh_wait_until 10 test -e "$A/empty"
	t9="$(sh_xattr commit_ts "$A/empty")"
	[ "$t9" -eq $((t1 + 8)) ]
	ev_check "$t1" "del(.time) == {commit_ts: $t1, txn: \"auto\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"text\", op: \"put\", version: 1, value: \"hello\\n\"}]}"
	ev_check $((t1 + 1)) '.ops[0].value == "say \"hi\"\t\\\n" and (.ops[0] | keys) == ["agent","key","ns","op","value","version"]'
	ev_check $((t1 + 2)) '.ops[0].value == "héllo ✓\n"'
	ev_check $((t1 + 3)) '.ops[0].value == "a\u0000b"'
	ev_check $((t1 + 4)) '.ops[0].value == "01\n"'
	ev_check $((t1 + 5)) '.ops[0].value == "{\"a\":1} x\n"'
	ev_check $((t1 + 6)) '.ops[0].value == "NaN\n"'
	ev_check $((t1 + 7)) '.ops[0].value == "no newline"'
	ev_check "$t9" '.ops == [{ns: "default", agent: "agent-1", key: "empty", op: "put", version: 1, value: ""}]'
}

@test "a JSON number beyond an int64 or a double appears as its text, exactly (documented limit)" {
	echo 12345678901234567890123 >"$A/big"
	t1="$(sh_xattr commit_ts "$A/big")"
	echo 1e400 >"$A/huge"
	ev_check "$t1" '.ops[0].value == "12345678901234567890123\n"'
	ev_check $((t1 + 1)) '.ops[0].value == "1e400\n"'
}

@test "bytes that are not UTF-8 appear as value_base64 that decodes to them, and never as value" {
	printf '\377\0x' >"$SH_TMP/v1"         # 0xff never occurs in UTF-8
	printf '\355\240\200' >"$SH_TMP/v2"    # an encoded UTF-16 surrogate, U+D800
	printf '\300\257' >"$SH_TMP/v3"        # an overlong encoding of "/"
	printf '\364\220\200\200' >"$SH_TMP/v4" # beyond U+10FFFF
	printf 'ab\342\202' >"$SH_TMP/v5"      # a truncated 3-byte sequence
	printf '"\377"' >"$SH_TMP/v6"          # a JSON string holding a non-UTF-8 byte
	for i in 1 2 3 4 5 6; do cp "$SH_TMP/v$i" "$A/v$i"; done
	t6="$(sh_xattr commit_ts "$A/v6")"
	t1=$((t6 - 5))
	ev_check "$t1" "del(.time) == {commit_ts: $t1, txn: \"auto\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"v1\", op: \"put\", version: 1, value_base64: \"/wB4\"}]}"
	ev_check $((t1 + 1)) '.ops[0].value_base64 == "7aCA"'
	ev_check $((t1 + 2)) '.ops[0].value_base64 == "wK8="'
	ev_check $((t1 + 3)) '.ops[0].value_base64 == "9JCAgA=="'
	ev_check $((t1 + 4)) '.ops[0].value_base64 == "YWLigg=="'
	ev_check $((t1 + 5)) '.ops[0].value_base64 == "Iv8i"'
	sh_jq '[., inputs] | all(.ops[0] | has("value") | not)' "$EV/all.jsonl"
	for i in 1 2 3 4 5 6; do
		jq -r --arg k "v$i" 'select(.ops[0].key == $k) | .ops[0].value_base64' "$EV/all.jsonl" |
			base64 -d | cmp - "$SH_TMP/v$i"
	done
}

@test "names that are not UTF-8 appear as ns_base64, agent_base64, key_base64 and txn_base64 in every stream" {
	# One empty commit under a name that is not UTF-8 once made every stream fail.
	T="$MNT/.tx/"$'\xff'
	mkdir "$T"
	sh_commit "$T"
	run jq -c 'del(.time)' "$T/.commit"
	assert_output '{"commit_ts":1,"txn_base64":"/w==","ops":0}'
	run jq -c '[.state, .txn_base64, has("txn")]' "$T/.status"
	assert_output '["committed","/w==",false]'
	N=$'n\xfes' G=$'a\xfdg' K=$'k\xfc'
	mkdir -p "$MNT/$N/$G/$K"
	echo v >"$MNT/$N/$G/$K/x"
	echo w >"$A/plain"
	run jq -c 'del(.time)' "$EV/all.jsonl"
	assert_line --index 0 '{"commit_ts":1,"txn_base64":"/w==","ops":[]}'
	assert_line --index 2 '{"commit_ts":3,"txn":"auto","ops":[{"ns_base64":"bv5z","agent_base64":"Yf1n","key_base64":"a/wveA==","op":"put","version":1,"value":"v\n"}]}'
	assert_line --index 3 --partial '"ops":[{"ns":"default","agent":"agent-1","key":"plain",'
	# The names decode to the very bytes of the paths.
	[ "$(jq -r 'select(.commit_ts == 3) | .ops[0].key_base64' "$EV/all.jsonl" | base64 -d)" = "$K/x" ]
	[ "$(jq -r 'select(.commit_ts == 3) | .ops[0].ns_base64' "$EV/all.jsonl" | base64 -d)" = "$N" ]
	# commit 2 made the directory $K (mkdir -p), commit 3 the key
	cmp <(sed -n 2,3p "$EV/all.jsonl") "$EV/$N/$G.jsonl"
	cmp <(sed -n '2,$p' "$EV/all.jsonl") "$EV/since/2/all.jsonl"
	cmp "$EV/$N/$G.jsonl" "$EV/since/1/$N/$G.jsonl"
	run timeout 2 head -n 2 "$FO/$N/$G.jsonl"
	assert_success
	assert_output "$(cat "$EV/$N/$G.jsonl")"
	run timeout 2 head -n 4 "$FO/all.jsonl"
	assert_success
	assert_output "$(cat "$EV/all.jsonl")"
	run jq -c '[.version, .txn, .op]' "$MNT/.history/$N/$G/$K%2Fx/index.jsonl"
	assert_output '[1,"auto","put"]'
}

@test "a delete appears as op delete with the delete's version and no value at all" {
	echo '{"a":1}' >"$A/k"
	echo two >"$A/k"
	rm "$A/k"
	t="$(sh_probe_ts)"
	t=$((t - 1))
	ev_check "$t" "del(.time) == {commit_ts: $t, txn: \"auto\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"k\", op: \"delete\", version: 3}]}"
	ev_check $((t - 1)) '.ops == [{ns: "default", agent: "agent-1", key: "k", op: "put", version: 2, value: "two\n"}]'
	ev_check "$t" '.ops[0] | has("value") or has("value_base64") | not' "$EV/default/agent-1.jsonl"
	# a delete in a transaction, next to a put, and a live mv (delete + put in one commit)
	echo x >"$A/gone"
	T="$MNT/.tx/mixed"
	mkdir "$T"
	rm "$T/default/agent-1/gone"
	printf '\377' >"$T/default/agent-1/bin"
	sh_commit "$T"
	c="$(jq -r .commit_ts "$T/.commit")"
	ev_check "$c" "(del(.time) | .ops |= sort_by(.key)) == {commit_ts: $c, txn: \"mixed\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"bin\", op: \"put\", version: 1, value_base64: \"/w==\"}, {ns: \"default\", agent: \"agent-1\", key: \"gone\", op: \"delete\", version: 2}]}"
	mv "$A/bin" "$A/moved"
	m="$(sh_xattr commit_ts "$A/moved")"
	[ "$m" -eq $((c + 1)) ]
	ev_check "$m" '(.ops | sort_by(.key)) == [{ns: "default", agent: "agent-1", key: "bin", op: "delete", version: 2}, {ns: "default", agent: "agent-1", key: "moved", op: "put", version: 1, value_base64: "/w=="}]'
}

@test "a transaction's note renamed onto .commit appears as note: JSON as JSON, text as a string" {
	T="$MNT/.tx/job-1"
	mkdir "$T"
	echo '{"who":"planner","step":3}' >"$T/.why"
	echo v >"$T/default/agent-1/k"
	mv "$T/.why" "$T/.commit"
	c1="$(jq -r .commit_ts "$T/.commit")"
	time1="$(jq -r .time "$T/.commit")"
	T2="$MNT/.tx/job-2"
	mkdir "$T2"
	echo 'because the plan said so' >"$T2/.commit.pending"
	echo w >"$T2/default/agent-1/k"
	sh_commit "$T2"
	c2="$(jq -r .commit_ts "$T2/.commit")"
	[ "$c2" -eq $((c1 + 1)) ]
	ev_check "$c1" ". == {commit_ts: $c1, txn: \"job-1\", time: \"$time1\", note: {who: \"planner\", step: 3}, ops: [{ns: \"default\", agent: \"agent-1\", key: \"k\", op: \"put\", version: 1, value: \"v\\n\"}]}"
	ev_check "$c2" "del(.time) == {commit_ts: $c2, txn: \"job-2\", note: \"because the plan said so\\n\", ops: [{ns: \"default\", agent: \"agent-1\", key: \"k\", op: \"put\", version: 2, value: \"w\\n\"}]}"
	ev_check "$c2" ".time == \"$(jq -r .time "$T2/.commit")\""
	# the per-agent file carries the same note
	ev_check "$c1" '.note == {who: "planner", step: 3}' "$EV/default/agent-1.jsonl"
	ev_check "$c2" '.note == "because the plan said so\n"' "$EV/default/agent-1.jsonl"
	# an empty note (the untouched .commit.pending) is omitted, not null or ""
	T3="$MNT/.tx/job-3"
	mkdir "$T3"
	echo x >"$T3/default/agent-1/k"
	sh_commit "$T3"
	ev_check $((c2 + 1)) 'has("note") | not'
	ev_check "$c1" '(keys) == ["commit_ts","note","ops","time","txn"]'
}

@test "a committed transaction with no ops is one line with empty ops, and is in no agent's file" {
	echo v >"$A/k"
	echo w >"$B/k"
	T="$MNT/.tx/nothing"
	mkdir "$T"
	sh_commit "$T"
	c="$(jq -r .commit_ts "$T/.commit")"
	T2="$MNT/.tx/nothing-but-a-note"
	mkdir "$T2"
	echo '["only", "a", "note"]' >"$T2/.commit.pending"
	sh_commit "$T2"
	ev_check "$c" ". == {commit_ts: $c, txn: \"nothing\", time: \"$(jq -r .time "$T/.commit")\", ops: []}"
	ev_check $((c + 1)) "del(.time) == {commit_ts: $((c + 1)), txn: \"nothing-but-a-note\", note: [\"only\", \"a\", \"note\"], ops: []}"
	run ts_of "$EV/all.jsonl"
	assert_output "$(printf '%s\n' 1 2 "$c" $((c + 1)))"
	run ts_of "$EV/default/agent-1.jsonl"
	assert_output 1
	run ts_of "$EV/default/agent-2.jsonl"
	assert_output 2
}

# --- per-agent files ---------------------------------------------------------------------

@test "a multi-agent transaction's per-agent event files each hold only that agent's ops" {
	echo x0 >"$A/x"
	echo gone >"$A/gone"
	echo y0 >"$B/y"
	mkdir -p "$MNT/ns2/agent-1"
	echo z0 >"$MNT/ns2/agent-1/z"
	T="$MNT/.tx/multi"
	mkdir "$T"
	echo '{"x":1}' >"$T/default/agent-1/x"
	rm "$T/default/agent-1/gone"
	echo y1 >"$T/default/agent-2/y"
	mkdir -p "$T/ns2/agent-1/step"
	echo z1 >"$T/ns2/agent-1/step/z"
	echo '{"why":"fan-out"}' >"$T/.commit.pending"
	sh_commit "$T"
	c="$(jq -r .commit_ts "$T/.commit")"
	[ "$c" -eq 5 ]
	echo after >"$B/y"
	ev_check "$c" '(.ops | length) == 5 and (.ops | map(.ns + "/" + .agent + "/" + .key) | sort) == ["default/agent-1/gone","default/agent-1/x","default/agent-2/y","ns2/agent-1/step","ns2/agent-1/step/z"]'
	ev_check "$c" "(del(.time) | .ops |= sort_by(.key)) == {commit_ts: $c, txn: \"multi\", note: {why: \"fan-out\"}, ops: [{ns: \"default\", agent: \"agent-1\", key: \"gone\", op: \"delete\", version: 2}, {ns: \"default\", agent: \"agent-1\", key: \"x\", op: \"put\", version: 2, value: {x: 1}}]}" "$EV/default/agent-1.jsonl"
	ev_check "$c" '.ops == [{ns: "default", agent: "agent-2", key: "y", op: "put", version: 2, value: "y1\n"}] and .note == {why: "fan-out"} and .txn == "multi"' "$EV/default/agent-2.jsonl"
	# the same agent name in another namespace is another agent
	# the staged mkdir of step/ is committed too, before the key in it
	ev_check "$c" '.ops == [{ns: "ns2", agent: "agent-1", key: "step", op: "mkdir"}, {ns: "ns2", agent: "agent-1", key: "step/z", op: "put", version: 1, value: "z1\n"}]' "$EV/ns2/agent-1.jsonl"
	# commit_ts, txn, time and note are those of the whole transaction
	full_time="$(jq -r --argjson t "$c" 'select(.commit_ts == $t) | .time' "$EV/all.jsonl")"
	for f in default/agent-1 default/agent-2 ns2/agent-1; do
		ev_check "$c" ".time == \"$full_time\"" "$EV/$f.jsonl"
	done
	run ts_of "$EV/default/agent-1.jsonl"
	assert_output "$(printf '1\n2\n5')"
	run ts_of "$EV/default/agent-2.jsonl"
	assert_output "$(printf '3\n5\n6')"
	run ts_of "$EV/ns2/agent-1.jsonl"
	assert_output "$(printf '4\n5')"
	# each per-agent file is exactly the full log filtered to that agent
	for na in "default agent-1" "default agent-2" "ns2 agent-1"; do
		set -- $na
		run diff <(agent_view "$1" "$2" "$EV/all.jsonl") <(jq -c . "$EV/$1/$2.jsonl")
		assert_success
		assert_output ''
	done
	# an agent that was never written has an empty file
	[ -f "$EV/default/agent-3.jsonl" ]
	cmp /dev/null "$EV/default/agent-3.jsonl"
	cmp /dev/null "$EV/nowhere/nobody.jsonl"
}

@test "ls .events lists all.jsonl, since, .ns and the namespaces that ever held keys; ls .events/ns lists their agents" {
	run ls -A "$EV"
	assert_output "$(printf '.ns\nall.jsonl\nsince')"
	run ls -A "$FO"
	assert_output "$(printf '.ns\nall.jsonl\nsince')"
	[ -f "$EV/all.jsonl" ]
	cmp /dev/null "$EV/all.jsonl"
	# a namespace made with mkdir but never holding a key is not listed
	mkdir -p "$MNT/empty/agent"
	echo v >"$A/k"
	echo w >"$B/k"
	mkdir -p "$MNT/ns2/b"
	echo x >"$MNT/ns2/b/x"
	rm "$MNT/ns2/b/x"
	run ls -A "$EV"
	assert_output "$(printf '.ns\nall.jsonl\ndefault\nns2\nsince')"
	run ls -A "$FO"
	assert_output "$(printf '.ns\nall.jsonl\ndefault\nns2\nsince')"
	run ls -A "$EV/default"
	assert_output "$(printf 'agent-1.jsonl\nagent-2.jsonl')"
	run ls -A "$FO/default"
	assert_output "$(printf 'agent-1.jsonl\nagent-2.jsonl')"
	# an agent whose keys are all deleted held keys, and stays listed
	run ls -A "$EV/ns2"
	assert_output b.jsonl
	run ls -A "$EV/empty"
	assert_output ''
	run ls -A "$EV/since/2"
	assert_output "$(printf '.ns\nall.jsonl\ndefault\nns2')"
	run ls -A "$EV/since/2/default"
	assert_output "$(printf 'agent-1.jsonl\nagent-2.jsonl')"
	# each file is read-only and ends with a newline (a closed stream's stat size is not
	# specified: it would take rendering the stream; an open one's is, see below)
	for f in all.jsonl default/agent-1.jsonl default/agent-2.jsonl ns2/b.jsonl since/2/all.jsonl; do
		[ "$(cat "$EV/$f" | tail -c 1 | od -An -c | tr -d ' ')" = '\n' ]
		case "$f" in
		*all.jsonl) [ "$(stat -c %A "$EV/$f")" = -r-------- ] ;; # every agent: the owner's
		*) [ "$(stat -c %A "$EV/$f")" = -r--r--r-- ] ;;
		esac
	done
	[ "$(wc -l <"$EV/all.jsonl")" -eq 4 ]
	# names that are no event file: any other name is an agent's directory (of its key
	# prefixes' streams), as any name is a namespace
	[ -d "$EV/default/agent-1" ]
	run sh_errno read "$EV/default/agent-1.json"
	assert_output EISDIR
	run sh_errno stat "$EV/default/agent-1.jsonl/x"
	assert_output ENOTDIR
	run sh_errno read "$EV/default"
	assert_output EISDIR
}

# --- since/<ts> --------------------------------------------------------------------------

# make_history: commits of every kind, to agent-1, agent-2 and another namespace.
make_history() {
	echo '{"n":1}' >"$A/j"
	printf '\377' >"$B/bin"
	echo text >"$A/t"
	T="$MNT/.tx/both"
	mkdir "$T"
	echo 1 >"$T/default/agent-1/j"
	echo 2 >"$T/default/agent-2/bin"
	echo '{"note":true}' >"$T/.commit.pending"
	sh_commit "$T"
	mkdir -p "$MNT/ns2/c"
	echo c >"$MNT/ns2/c/k"
	rm "$A/t"
	mkdir "$MNT/.tx/empty"
	sh_commit "$MNT/.tx/empty"
	printf 'h\303\251' >"$B/u"
	mv "$A/j" "$A/j2"
	echo last >"$A/t"
}

@test ".events/since/T/all.jsonl is all.jsonl filtered to commit_ts >= T, byte for byte, for every T" {
	make_history
	h="$(sh_probe_ts)"
	[ "$h" -eq 11 ]
	[ "$(wc -l <"$EV/all.jsonl")" -eq "$h" ]
	for ((t = 0; t <= h + 2; t++)); do
		run diff <(jq -c --argjson t "$t" 'select(.commit_ts >= $t)' "$EV/all.jsonl") \
			<(jq -c . "$EV/since/$t/all.jsonl")
		assert_success
		assert_output ''
		# and the very bytes: the tail of all.jsonl from the line of commit_ts T
		from=$((t < 1 ? 1 : t))
		cmp <(tail -n +"$from" "$EV/all.jsonl") "$EV/since/$t/all.jsonl"
	done
	cmp "$EV/all.jsonl" "$EV/since/0/all.jsonl"
	cmp "$EV/all.jsonl" "$EV/since/1/all.jsonl"
	cmp /dev/null "$EV/since/$((h + 1))/all.jsonl"
	cmp /dev/null "$EV/since/1000000/all.jsonl"
}

@test ".events/since/T/ns/agent.jsonl is the agent's file filtered to commit_ts >= T, for every T" {
	make_history
	h="$(sh_probe_ts)"
	for na in default/agent-1 default/agent-2 ns2/c probe/p default/agent-9; do
		for ((t = 0; t <= h + 1; t++)); do
			run diff <(jq -c --argjson t "$t" 'select(.commit_ts >= $t)' "$EV/$na.jsonl") \
				<(jq -c . "$EV/since/$t/$na.jsonl")
			assert_success
			assert_output ''
			run diff <(agent_view "${na%/*}" "${na#*/}" "$EV/since/$t/all.jsonl") \
				<(jq -c . "$EV/since/$t/$na.jsonl")
			assert_success
			assert_output ''
		done
		cmp "$EV/$na.jsonl" "$EV/since/0/$na.jsonl"
	done
	run ts_of "$EV/since/5/default/agent-1.jsonl"
	assert_output "$(printf '6\n9\n10')"
}

@test "a malformed commit_ts under .events/since and .follow/since gives EINVAL" {
	echo v >"$A/k"
	for t in x1 01 -1 00 1x +1 0x1 1.0 ' 1' '1 '; do
		run sh_errno stat "$EV/since/$t"
		assert_output EINVAL
		run sh_errno read "$EV/since/$t/all.jsonl"
		assert_output EINVAL
		run sh_errno read "$FO/since/$t/default/agent-1.jsonl"
		assert_output EINVAL
	done
	run sh_errno stat "$EV/since/x/default"
	assert_output EINVAL
}

@test "a well-formed commit_ts far beyond the head, up to INT64_MAX, gives an empty .events/since file" {
	echo v >"$A/k"
	for t in 999999999999999999 1000000000000000000 9223372036854775807; do
		run sh_errno read "$EV/since/$t/all.jsonl"
		[ "$output" = OK ] || { echo "since/$t/all.jsonl: $output" >&2; false; }
		run sh_errno stat "$FO/since/$t/default/agent-1.jsonl"
		[ "$output" = OK ] || { echo ".follow/since/$t/default/agent-1.jsonl: $output" >&2; false; }
		cmp /dev/null "$EV/since/$t/all.jsonl"
	done
}

# --- order, gaps, growth -----------------------------------------------------------------

@test "all.jsonl holds every commit_ts from 1 to the head once, in order, and failed commits leave no gap" {
	make_history
	# a conflict, an EFBIG write and an abandoned transaction commit nothing
	mkdir "$MNT/.tx/first" "$MNT/.tx/second"
	echo first >"$MNT/.tx/first/default/agent-1/c"
	echo second >"$MNT/.tx/second/default/agent-1/c"
	sh_commit "$MNT/.tx/first"
	run sh_errno rename "$MNT/.tx/second/.commit.pending" "$MNT/.tx/second/.commit"
	assert_output ESTALE
	run sh_errno writen "$A/big" 1048577
	assert_output EFBIG
	mkdir "$MNT/.tx/abandoned"
	echo x >"$MNT/.tx/abandoned/default/agent-1/never"
	rmdir "$MNT/.tx/abandoned" 2>/dev/null || rm -rf "$MNT/.tx/abandoned"
	echo after >"$A/after"
	h="$(sh_probe_ts)"
	[ "$h" -eq 13 ]
	sh_jq "[., inputs] | map(.commit_ts) == [range(1; $((h + 1)))]" "$EV/all.jsonl"
	[ "$(wc -l <"$EV/all.jsonl")" -eq "$h" ]
	# each line is complete JSON on its own line, and names the commit that made the key
	[ "$(jq -c . "$EV/all.jsonl" | wc -l)" -eq "$h" ]
	ev_check "$(sh_xattr commit_ts "$A/after")" '.ops == [{ns: "default", agent: "agent-1", key: "after", op: "put", version: 1, value: "after\n"}]'
	ev_check "$(sh_xattr commit_ts "$A/c")" '.txn == "first" and .ops[0].value == "first\n"'
	run jq -r 'select(.txn == "second" or any(.ops[]; .key == "big" or .key == "never")) | .commit_ts' "$EV/all.jsonl"
	assert_output ''
	# per-agent files are in commit_ts order too
	for f in default/agent-1 default/agent-2; do
		sh_jq '[., inputs] | map(.commit_ts) | . == (sort | unique)' "$EV/$f.jsonl"
	done
}

@test "an open .events file grows: fstat shows the new size after a commit and a read there returns the new line" {
	echo one >"$A/k"
	echo two >"$B/k"
	run "$SH_PYTHON" -c "$PY_GROW" "$EV/all.jsonl" "$A/new"
	assert_success
	assert_equal "${lines[0]}" "size before a read 0"
	assert_equal "${lines[1]}" "read to the end True 2"
	assert_equal "${lines[2]}" "grew True new bytes True new lines 1"
	assert_equal "${lines[3]}" "$(tail -n 1 "$EV/all.jsonl")"
	jq -e '.commit_ts == 3 and .ops[0].key == "new"' <<<"${lines[3]}"
	# a stat by name now tells the current size, without rendering the stream again
	[ "$(stat -c %s "$EV/all.jsonl")" = "$(cat "$EV/all.jsonl" | wc -c)" ]
	# the same for a per-agent file: a commit to another agent does not grow it
	run "$SH_PYTHON" -c "$PY_GROW" "$EV/default/agent-1.jsonl" "$A/newer"
	assert_success
	assert_equal "${lines[0]}" "size before a read 0"
	assert_equal "${lines[1]}" "read to the end True 2"
	assert_equal "${lines[2]}" "grew True new bytes True new lines 1"
	jq -e '.commit_ts == 4 and .ops[0].key == "newer"' <<<"${lines[3]}"
	# a read at the end of .events returns end-of-file at once (cat ends)
	run cat "$EV/default/agent-2.jsonl"
	assert_success
	assert_output "$(sed -n 2p "$EV/all.jsonl")"
}

@test "tail -f .events/all.jsonl picks up a new commit" {
	echo one >"$A/k"
	echo two >"$B/k"
	bg tail -n +1 -f "$EV/all.jsonl" >"$SH_TMP/tail.out"
	bg tail -n +1 -f "$EV/default/agent-2.jsonl" >"$SH_TMP/tail2.out"
	sh_wait_until 20 has_lines "$SH_TMP/tail.out" 2
	sh_wait_until 20 has_lines "$SH_TMP/tail2.out" 1
	echo three >"$A/k"
	T="$MNT/.tx/later"
	mkdir "$T"
	echo four >"$T/default/agent-2/k"
	sh_commit "$T"
	sh_wait_until 20 has_lines "$SH_TMP/tail.out" 4
	sh_wait_until 20 has_lines "$SH_TMP/tail2.out" 2
	cmp "$SH_TMP/tail.out" "$EV/all.jsonl"
	cmp "$SH_TMP/tail2.out" "$EV/default/agent-2.jsonl"
	run ts_of "$SH_TMP/tail2.out"
	assert_output "$(printf '2\n4')"
	sh_jq '.txn == "later" and .ops[0].value == "four\n"' <(tail -n 1 "$SH_TMP/tail.out")
}

# --- .follow -----------------------------------------------------------------------------

# writer W N: N commits by one writer process: odd i a direct write to agent-1, even i a
# transaction writing agent-1 and agent-2, and every third i a direct write to agent-2.
writer() {
	local w=$1 n=$2 i T
	for ((i = 1; i <= n; i++)); do
		if ((i % 2)); then
			echo "$w-$i" >"$A/w$w-$i"
		else
			T="$MNT/.tx/w$w-$i"
			mkdir "$T"
			echo "{\"w\":$w,\"i\":$i}" >"$T/default/agent-1/tx-w$w"
			echo "$i" >"$T/default/agent-2/tx-w$w"
			sh_commit "$T"
			rmdir "$T"
		fi
		if ((i % 3 == 0)); then
			echo "$i" >"$B/only-b-w$w"
		fi
	done
}

@test "a .follow reader receives N commits made concurrently by several writers in order, with no gaps or duplicates" {
	W=4
	N=30
	bg cat "$FO/default/agent-1.jsonl" >"$SH_TMP/a1.out"
	bg cat "$FO/all.jsonl" >"$SH_TMP/all.out"
	bg cat "$FO/default/agent-2.jsonl" >"$SH_TMP/a2.out"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[1]}"
	writers=()
	for ((w = 1; w <= W; w++)); do
		writer "$w" "$N" 3>&- &
		writers+=("$!")
		BG_PIDS+=("$!")
	done
	for p in "${writers[@]}"; do
		wait "$p"
	done
	h="$(sh_probe_ts)"
	[ "$h" -eq $((W * N + W * (N / 3) + 1)) ]
	sh_wait_until 60 has_lines "$SH_TMP/a1.out" $((W * N))
	sh_wait_until 60 has_lines "$SH_TMP/all.out" "$h"
	sh_wait_until 60 has_lines "$SH_TMP/a2.out" $((W * N / 2 + W * (N / 3)))
	# the readers are still following, and hold exactly what .events holds now
	kill -0 "${BG_PIDS[0]}"
	cmp "$SH_TMP/a1.out" "$EV/default/agent-1.jsonl"
	cmp "$SH_TMP/all.out" "$EV/all.jsonl"
	cmp "$SH_TMP/a2.out" "$EV/default/agent-2.jsonl"
	# every line complete JSON; commit_ts strictly increasing; all.jsonl 1..head
	[ "$(jq -c . "$SH_TMP/a1.out" | wc -l)" -eq $((W * N)) ]
	sh_jq '[., inputs] | map(.commit_ts) | . == (sort | unique)' "$SH_TMP/a1.out"
	sh_jq "[., inputs] | map(.commit_ts) == [range(1; $((h + 1)))]" "$SH_TMP/all.out"
	# only agent-1's ops, and every one of the writers' commits to agent-1
	sh_jq '[., inputs] | all(.[].ops[]; .ns == "default" and .agent == "agent-1")' "$SH_TMP/a1.out"
	sh_jq "[., inputs] | [.[].ops[].key | select(startswith(\"w\"))] | length == $((W * N / 2)) and (unique | length) == $((W * N / 2))" "$SH_TMP/a1.out"
	sh_jq "[., inputs] | map(select(.txn != \"auto\")) | length == $((W * N / 2)) and all(.ops | length == 1)" "$SH_TMP/a1.out"
	# agent-1's stream is the full stream filtered to agent-1: no gap, no duplicate
	run diff <(agent_view default agent-1 "$SH_TMP/all.out") <(jq -c . "$SH_TMP/a1.out")
	assert_success
	assert_output ''
	run diff <(agent_view default agent-2 "$SH_TMP/all.out") <(jq -c . "$SH_TMP/a2.out")
	assert_success
	assert_output ''
	# each writer's own commits arrive in the order it made them
	for ((w = 1; w <= W; w++)); do
		run jq -r --argjson w "$w" '.ops[] | select(.key == "tx-w\($w)") | .value.i' "$SH_TMP/a1.out"
		assert_output "$(seq 2 2 "$N")"
	done
}

@test "a .follow read at the end blocks until the next commit to that agent, then returns that commit's line" {
	echo one >"$A/k"
	bg cat "$FO/default/agent-9.jsonl" >"$SH_TMP/a9.out"
	bg cat "$FO/since/2/default/agent-1.jsonl" >"$SH_TMP/since.out"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[1]}"
	# commits to other agents are not agent-9's
	echo two >"$B/k"
	echo three >"$MNT/default/agent-10/k"
	mkdir "$MNT/.tx/empty"
	sh_commit "$MNT/.tx/empty"
	echo nine >"$MNT/default/agent-9/k"
	t="$(sh_xattr commit_ts "$MNT/default/agent-9/k")"
	[ "$t" -eq 5 ]
	sh_wait_until 20 has_lines "$SH_TMP/a9.out" 1
	echo four >"$A/k"
	sh_wait_until 20 has_lines "$SH_TMP/since.out" 1
	echo five >"$MNT/default/agent-9/k"
	sh_wait_until 20 has_lines "$SH_TMP/a9.out" 2
	cmp "$SH_TMP/a9.out" "$EV/default/agent-9.jsonl"
	run ts_of "$SH_TMP/a9.out"
	assert_output "$(printf '5\n7')"
	cmp "$SH_TMP/since.out" "$EV/since/2/default/agent-1.jsonl"
	run ts_of "$SH_TMP/since.out"
	assert_output 6
	# still blocked, waiting for more
	kill -0 "${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
}

@test "a .follow file replays the log from its start (or since/T) before it waits for new commits" {
	make_history
	h="$(sh_probe_ts)"
	bg cat "$FO/all.jsonl" >"$SH_TMP/all.out"
	bg cat "$FO/since/4/all.jsonl" >"$SH_TMP/s4.out"
	bg cat "$FO/since/0/default/agent-2.jsonl" >"$SH_TMP/b.out"
	sh_wait_until 20 has_lines "$SH_TMP/all.out" "$h"
	sh_wait_until 20 has_lines "$SH_TMP/s4.out" $((h - 3))
	sh_wait_until 20 has_lines "$SH_TMP/b.out" "$(nlines "$EV/default/agent-2.jsonl")"
	cmp "$SH_TMP/all.out" "$EV/all.jsonl"
	cmp "$SH_TMP/s4.out" "$EV/since/4/all.jsonl"
	cmp "$SH_TMP/b.out" "$EV/default/agent-2.jsonl"
	echo more >"$B/more"
	sh_wait_until 20 has_lines "$SH_TMP/all.out" $((h + 1))
	sh_wait_until 20 has_lines "$SH_TMP/s4.out" $((h - 2))
	sh_wait_until 20 has_lines "$SH_TMP/b.out" "$(nlines "$EV/default/agent-2.jsonl")"
	cmp "$SH_TMP/all.out" "$EV/all.jsonl"
	cmp "$SH_TMP/s4.out" "$EV/since/4/all.jsonl"
	cmp "$SH_TMP/b.out" "$EV/default/agent-2.jsonl"
	for p in "${BG_PIDS[@]}"; do kill -0 "$p"; done
}

@test "a .follow/since/T reader opened before T exists receives the commits from T on and none before" {
	echo one >"$A/k"
	bg cat "$FO/since/4/all.jsonl" >"$SH_TMP/s4.out"
	bg cat "$FO/since/4/default/agent-2.jsonl" >"$SH_TMP/s4b.out"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[1]}"
	echo two >"$B/k"
	echo three >"$A/k"
	echo four >"$A/k"
	echo five >"$B/k"
	sh_wait_until 20 has_lines "$SH_TMP/s4.out" 2
	sh_wait_until 20 has_lines "$SH_TMP/s4b.out" 1
	run ts_of "$SH_TMP/s4.out"
	assert_output "$(printf '4\n5')"
	run ts_of "$SH_TMP/s4b.out"
	assert_output 5
	cmp "$SH_TMP/s4.out" "$EV/since/4/all.jsonl"
	cmp "$SH_TMP/s4b.out" "$EV/since/4/default/agent-2.jsonl"
}

@test "a transaction whose line is larger than one FUSE read arrives whole through .follow, then the next one" {
	echo zero >"$A/k"
	bg cat "$FO/since/2/all.jsonl" >"$SH_TMP/big.out"
	sh_wait_until 20 blocked_in_fuse "${BG_PIDS[0]}"
	v="$(sh_longname 1000 v)"
	T="$MNT/.tx/big"
	mkdir "$T"
	for ((i = 1; i <= 300; i++)); do echo "$v" >"$T/default/agent-1/k$i"; done
	sh_commit "$T"
	echo after >"$B/k"
	sh_wait_until 30 has_lines "$SH_TMP/big.out" 2
	cmp "$SH_TMP/big.out" "$EV/since/2/all.jsonl"
	[ "$(head -n 1 "$SH_TMP/big.out" | wc -c)" -gt 300000 ]
	sh_jq '[., inputs] | length == 2 and (.[0].ops | length) == 300 and .[0].txn == "big" and .[1].ops[0].value == "after\n"' "$SH_TMP/big.out"
}

@test "cat .follow/default/agent-1.jsonl | jq is a live feed of that agent's commits" {
	echo '{"step":1}' >"$A/progress"
	bg_group 'cat "$1" | jq --unbuffered -c "{ts: .commit_ts, txn, ops: [.ops[] | [.op, .key, .value]]}" >"$2"' \
		feed "$FO/default/agent-1.jsonl" "$SH_TMP/feed.out"
	sh_wait_until 20 has_lines "$SH_TMP/feed.out" 1
	T="$MNT/.tx/job-42"
	mkdir "$T"
	echo '{"step":2}' >"$T/default/agent-1/progress"
	echo other >"$T/default/agent-2/progress"
	sh_commit "$T"
	echo side >"$B/side"
	rm "$A/progress"
	sh_wait_until 20 has_lines "$SH_TMP/feed.out" 3
	run cat "$SH_TMP/feed.out"
	assert_output "$(
		cat <<-'EOF'
			{"ts":1,"txn":"auto","ops":[["put","progress",{"step":1}]]}
			{"ts":2,"txn":"job-42","ops":[["put","progress",{"step":2}]]}
			{"ts":4,"txn":"auto","ops":[["delete","progress",null]]}
		EOF
	)"
}

@test "poll and select report a .follow file readable when a commit arrives, and not before" {
	echo zero >"$A/k"
	bg "$SH_PYTHON" -c "$PY_POLL" "$FO/since/2/all.jsonl" "$SH_TMP/poll.out" "$SH_TMP/m1" "$SH_TMP/m2"
	py="${BG_PIDS[0]}"
	sh_wait_until 20 test -e "$SH_TMP/m1"
	echo one >"$A/k"
	sh_wait_until 20 test -e "$SH_TMP/m2"
	T="$MNT/.tx/two"
	mkdir "$T"
	echo two >"$T/default/agent-2/k"
	sh_commit "$T"
	wait "$py"
	run cat "$SH_TMP/poll.out"
	assert_output "$(
		printf '%s\n' 'select before: not readable' 'poll before: not readable' 'select: readable'
		sed -n 2p "$EV/all.jsonl"
		printf '%s\n' 'poll after read: not readable' 'poll: readable'
		sed -n 3p "$EV/all.jsonl"
	)"
	# a .follow file with unread lines is readable at once; so is every .events file
	run "$SH_PYTHON" -c 'import os, select, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    r, _, _ = select.select([fd], [], [], 0)
    print(p.split("/mnt/")[1], "readable" if r else "not readable")' \
		"$FO/all.jsonl" "$FO/default/agent-2.jsonl" "$EV/since/9/all.jsonl"
	assert_output "$(printf '%s\n' '.follow/all.jsonl readable' '.follow/default/agent-2.jsonl readable' '.events/since/9/all.jsonl readable')"
}

@test "a signal interrupts a blocked .follow read with EINTR and no partial line; the next read gets the whole commit" {
	echo zero >"$A/k"
	bg "$SH_PYTHON" -c "$PY_EINTR" "$FO/since/2/default/agent-1.jsonl" "$SH_TMP/eintr.out"
	py="${BG_PIDS[0]}"
	sh_wait_until 20 blocked_in_fuse "$py"
	kill -ALRM "$py"
	sh_wait_until 20 has_lines "$SH_TMP/eintr.out" 1
	run cat "$SH_TMP/eintr.out"
	assert_output 'first: EINTR'
	# the interrupted read consumed nothing: the next one, blocked again, gets the line
	sh_wait_until 20 blocked_in_fuse "$py"
	kill -ALRM "$py" # ignored now
	T="$MNT/.tx/big"
	mkdir "$T"
	for i in $(seq 1 20); do echo "value $i" >"$T/default/agent-1/k$i"; done
	sh_commit "$T"
	wait "$py"
	run cat "$SH_TMP/eintr.out"
	assert_output "$(echo 'first: EINTR'; cat "$EV/since/2/default/agent-1.jsonl")"
	sh_jq '.txn == "big" and (.ops | length) == 20' <(tail -n 1 "$SH_TMP/eintr.out")
}

@test "killing a blocked .follow reader ends its read, and the mount keeps serving other readers" {
	echo zero >"$A/k"
	bg cat "$FO/all.jsonl" >/dev/null
	bg cat "$FO/default/agent-1.jsonl" >/dev/null
	bg cat "$FO/since/2/default/agent-1.jsonl" >"$SH_TMP/survivor.out"
	for p in "${BG_PIDS[@]}"; do sh_wait_until 20 blocked_in_fuse "$p"; done
	kill -TERM "${BG_PIDS[0]}"
	kill -KILL "${BG_PIDS[1]}"
	st=0
	wait "${BG_PIDS[0]}" || st=$?
	[ "$st" -eq 143 ]
	st=0
	wait "${BG_PIDS[1]}" || st=$?
	[ "$st" -eq 137 ]
	echo one >"$A/k"
	sh_wait_until 20 has_lines "$SH_TMP/survivor.out" 1
	cmp "$SH_TMP/survivor.out" "$EV/since/2/default/agent-1.jsonl"
	run cat "$A/k"
	assert_output one
	[ "$(sh_probe_ts)" -eq 3 ]
}

# --- read-only ---------------------------------------------------------------------------

@test "everything under .events and .follow is read-only: writes, unlink and rename give EROFS, create and mkdir EEXIST (every name is there)" {
	echo v >"$A/k"
	echo w >"$B/k"
	before="$(cat "$EV/all.jsonl")"
	ts0="$(sh_probe_ts)"
	for top in "$EV" "$FO"; do
		for f in all.jsonl default/agent-1.jsonl default/agent-3.jsonl since/1/all.jsonl since/1/default/agent-1.jsonl; do
			run sh_errno write "$top/$f" x
			assert_output EROFS
			run sh_errno writen "$top/$f" 10
			assert_output EROFS
			run sh_errno unlink "$top/$f"
			assert_output EROFS
			run sh_errno rename "$top/$f" "$top/default/renamed.jsonl"
			assert_output EROFS
			run sh_errno rename "$top/$f" "$A/from-events"
			assert_output EROFS
		done
		# every name below a namespace is there already: an agent's stream or the
		# directory of its key prefixes' streams
		run sh_errno create "$top/default/new"
		assert_output EEXIST
		run sh_errno write "$top/default/new.jsonl" x
		assert_output EROFS
		run sh_errno create "$top/since/1/default/new/k.jsonl"
		assert_output EEXIST
		run sh_errno write "$top/since/1/default/new/k.jsonl" x
		assert_output EROFS
		run sh_errno mkdir "$top/default/newdir"
		assert_output EEXIST
		run sh_errno mkdir "$top/since/1/default/newdir/sub"
		assert_output EEXIST
		run sh_errno rmdir "$top/default"
		assert_output EROFS
		run sh_errno rmdir "$top/since"
		assert_output EROFS
		run sh_errno rmdir "$top/since/1"
		assert_output EROFS
		run sh_errno rename "$top/default" "$top/since/1/x"
		assert_output EROFS
		run sh_errno rename "$A/k" "$top/default/k.jsonl"
		assert_output EROFS
		run sh_errno rename "$A/k" "$top/default/new.jsonl"
		assert_output EROFS
		run truncate -s 0 "$top/all.jsonl"
		assert_failure
		assert_output "truncate: cannot open '$top/all.jsonl' for writing: Read-only file system"
		run bash -c 'echo x >"$1"' _ "$top/default/agent-1.jsonl"
		assert_failure
		assert_output --partial 'Read-only file system'
	done
	# nothing was committed or changed
	[ "$(sh_probe_ts)" -eq $((ts0 + 1)) ]
	[ "$(head -n 2 "$EV/all.jsonl")" = "$before" ]
	run cat "$A/k"
	assert_output v
	run sh_errno stat "$A/from-events"
	assert_output ENOENT
	run ls "$A"
	assert_output k
}

# --- the past is immutable ---------------------------------------------------------------

@test "the past is immutable: the first N lines of the event files stay byte-identical after more commits and a restart" {
	make_history
	n="$(wc -l <"$EV/all.jsonl")"
	for f in all.jsonl default/agent-1.jsonl default/agent-2.jsonl ns2/c.jsonl since/3/all.jsonl since/3/default/agent-1.jsonl; do
		key="${f//\//_}"
		cp "$EV/$f" "$SH_TMP/$key.before"
	done
	# later commits rewrite and delete the very keys the old lines name
	echo rewritten >"$A/t"
	rm "$A/t"
	printf '\376' >"$B/bin"
	T="$MNT/.tx/later"
	mkdir "$T"
	echo later >"$T/default/agent-1/j2"
	rm "$T/default/agent-2/u"
	echo '"a note"' >"$T/.commit.pending"
	sh_commit "$T"
	check_prefixes() {
		local f key size
		for f in all.jsonl default/agent-1.jsonl default/agent-2.jsonl ns2/c.jsonl since/3/all.jsonl since/3/default/agent-1.jsonl; do
			key="${f//\//_}"
			size="$(stat -c %s "$SH_TMP/$key.before")"
			cmp <(head -c "$size" "$EV/$f") "$SH_TMP/$key.before" || return 1
			cmp <(head -c "$size" "$FO/$f") "$SH_TMP/$key.before" || return 1
		done
	}
	check_prefixes
	[ "$(wc -l <"$EV/all.jsonl")" -eq $((n + 4)) ]
	cp "$EV/all.jsonl" "$SH_TMP/all.after"
	sh_remount
	check_prefixes
	# after the restart the whole log, the later lines included, is the same bytes
	cmp "$EV/all.jsonl" "$SH_TMP/all.after"
	# and numbering goes on without a gap
	echo again >"$A/again"
	[ "$(sh_xattr commit_ts "$A/again")" -eq $((n + 5)) ]
	sh_jq "[., inputs] | map(.commit_ts) == [range(1; $((n + 6)))]" "$EV/all.jsonl"
	cmp <(head -n $((n + 4)) "$EV/all.jsonl") "$SH_TMP/all.after"
	check_prefixes
}
