#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Event streams rendered on demand: a stream of many pages reads the same whichever way it
# is read (cat, read(), small reads, reads that go back), its size is not rendered for a
# stat (0 until a reader read it to its end, like /proc), the usual tools read it whole,
# and every namespace, even one named "since" or "all.jsonl", is reachable in .events/.ns.

setup() {
	load helper
	sh_default_setup
	A="$MNT/default/agent-1"
	EV="$MNT/.events"
	FO="$MNT/.follow"
}

teardown() {
	sh_default_teardown
}

# many_commits: 24 transactions of 16 keys of 4 KiB (lines larger than a page of the
# stream) between 120 one-key commits: about 1.6 MB of events, commit_ts 1..144.
many_commits() {
	local i j T val
	val=$(head -c 4096 /dev/zero | tr '\0' v)
	for ((i = 1; i <= 24; i++)); do
		T="$MNT/.tx/t$i"
		mkdir "$T"
		for ((j = 1; j <= 16; j++)); do
			printf '%s' "$val" >"$T/default/agent-1/big$j"
		done
		sh_commit "$T"
		rmdir "$T"
		for ((j = 1; j <= 5; j++)); do
			echo "$i-$j" >"$A/small$j"
		done
	done
}

# Reads PATH four ways and compares: read() to the end, reads of 1000 bytes, then preads of
# random sizes at random offsets in random order (going back and forth). Prints the size.
PY_READS='
import os, random, sys
p = sys.argv[1]
whole = open(p, "rb").read()
fd = os.open(p, os.O_RDONLY)
parts = []
while True:
    b = os.read(fd, 1000)
    if not b:
        break
    parts.append(b)
assert b"".join(parts) == whole, "small sequential reads differ"
rnd = random.Random(7)
for _ in range(300):
    off = rnd.randrange(0, len(whole))
    n = rnd.choice([1, 100, 4096, 65536, 131072])
    assert os.pread(fd, n, off) == whole[off:off + n], "pread(%d, %d) differs" % (n, off)
assert os.pread(fd, 10, len(whole)) == b""
print(len(whole))
'

@test "a stream of many pages reads byte for byte the same through cat, read(), small reads and reads that go back" {
	many_commits
	cat "$EV/all.jsonl" >"$SH_TMP/all"
	# every commit once, in order, each line whole JSON
	run jq -r .commit_ts "$SH_TMP/all"
	assert_output "$(seq 1 144)"
	[ "$(stat -c %s "$SH_TMP/all")" -gt 1500000 ]
	run "$SH_PYTHON" -c "$PY_READS" "$EV/all.jsonl"
	assert_success
	assert_output "$(stat -c %s "$SH_TMP/all")"
	# an agent's file and a since/ file the same way
	run "$SH_PYTHON" -c "$PY_READS" "$EV/default/agent-1.jsonl"
	assert_success
	cmp "$SH_TMP/all" "$EV/default/agent-1.jsonl"
	run "$SH_PYTHON" -c "$PY_READS" "$EV/since/100/all.jsonl"
	assert_success
	cmp <(tail -n +100 "$SH_TMP/all") "$EV/since/100/all.jsonl"
	# .follow serves the same bytes up to the head
	cmp <(head -c "$(stat -c %s "$SH_TMP/all")" "$FO/all.jsonl") "$SH_TMP/all"
}

@test "stat of an event stream no reader has read to its end shows size 0; once read, its size, growing with commits" {
	echo one >"$A/k"
	echo two >"$A/k"
	[ "$(stat -c %s "$EV/all.jsonl")" = 0 ]
	[ "$(stat -c %s "$EV/default/agent-1.jsonl")" = 0 ]
	[ "$(stat -c %s "$EV/since/2/all.jsonl")" = 0 ]
	size=$(cat "$EV/all.jsonl" | wc -c)
	[ "$size" -gt 0 ]
	[ "$(stat -c %s "$EV/all.jsonl")" = "$size" ]
	# other streams are still unread
	[ "$(stat -c %s "$EV/default/agent-1.jsonl")" = 0 ]
	echo three >"$A/k"
	[ "$(stat -c %s "$EV/all.jsonl")" = "$(cat "$EV/all.jsonl" | wc -c)" ]
	[ "$(stat -c %s "$EV/all.jsonl")" -gt "$size" ]
}

@test "tools read an unread stream whole: tail -n, head, wc, less, grep, python open().read()" {
	many_commits
	cat "$EV/default/agent-1.jsonl" >"$SH_TMP/ref"
	# each tool on a stream no reader has read to its end (size 0 in stat)
	[ "$(stat -c %s "$EV/since/1/all.jsonl")" = 0 ]
	cmp <(tail -n 3 "$EV/since/1/all.jsonl") <(tail -n 3 "$SH_TMP/ref")
	[ "$(stat -c %s "$EV/since/2/all.jsonl")" = 0 ]
	cmp <(wc -l <"$EV/since/2/all.jsonl") <(tail -n +2 "$SH_TMP/ref" | wc -l)
	cmp <(head -n 5 "$EV/since/3/all.jsonl") <(tail -n +3 "$SH_TMP/ref" | head -n 5)
	cmp <(less "$EV/since/4/all.jsonl") <(tail -n +4 "$SH_TMP/ref")
	[ "$(grep -c '"txn":"t24"' "$EV/since/5/all.jsonl")" = 1 ]
	run "$SH_PYTHON" -c 'import sys; sys.stdout.write(open(sys.argv[1]).read())' "$EV/since/6/all.jsonl"
	assert_success
	cmp <(printf '%s\n' "$output") <(tail -n +6 "$SH_TMP/ref")
}

@test "a namespace named since or all.jsonl is reachable as .events/.ns/NAME, in .follow and below since/T too" {
	mkdir -p "$MNT/since/a" "$MNT/all.jsonl/b"
	echo s >"$MNT/since/a/k"
	echo j >"$MNT/all.jsonl/b/k"
	echo d >"$A/k"
	run ls -A "$EV"
	assert_output "$(printf '.ns\nall.jsonl\ndefault\nsince')"
	run ls -A "$EV/.ns"
	assert_output "$(printf 'all.jsonl\ndefault\nsince')"
	run ls -A "$EV/.ns/since"
	assert_output a.jsonl
	run jq -c '[.commit_ts, .ops[0].ns, .ops[0].key]' "$EV/.ns/since/a.jsonl"
	assert_output '[1,"since","k"]'
	run jq -c '[.commit_ts, .ops[0].ns]' "$EV/.ns/all.jsonl/b.jsonl"
	assert_output '[2,"all.jsonl"]'
	run jq -c '[.commit_ts, .ops[0].ns]' "$EV/.ns/default/agent-1.jsonl"
	assert_output '[3,"default"]'
	# below since/T, and in .follow
	run ls -A "$EV/since/2"
	assert_output "$(printf '.ns\nall.jsonl\ndefault\nsince')"
	run jq -c '.commit_ts' "$EV/since/2/.ns/all.jsonl/b.jsonl"
	assert_output 2
	run jq -c '.commit_ts' "$EV/since/1/since/a.jsonl"
	assert_output 1
	run jq -c '.commit_ts' <(head -n 1 "$FO/.ns/since/a.jsonl")
	assert_output 1
	# the shadowing names keep their meaning
	[ "$(wc -l <"$EV/all.jsonl")" = 3 ]
	run ls "$EV/since/1"
	assert_success
	run sh_errno stat "$EV/.ns/"
	assert_output OK
	[ -d "$EV/.ns/since/a" ] # where the streams of a's key prefixes are
	run sh_errno stat "$EV/.ns/since/a.jsonl/x"
	assert_output ENOTDIR
}
