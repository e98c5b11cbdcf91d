#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The past keeps the permissions of its time: a value is shown to a user only if that
# user could read it under the owners and modes recorded when it was written and under
# today's.  A private agent renamed away, or removed, must not leave its secrets in .at
# and .history for anyone to read (statehouse(5), OWNERS AND MODES).

A=4021 # the owner of the private agent
B=4022 # a stranger

setup() {
	load helper
	sh_default_setup -o allow_other
	mkdir -p "$MNT/open/c"
	chmod 0777 "$MNT/open"
	chown "$A:$A" "$MNT/open/c"
	chmod 0700 "$MNT/open/c"
	sh_as $A $A sh -c 'echo secret >open/c/k'
	T=$(sh_xattr commit_ts "$MNT/open/c/k")
}

teardown() {
	sh_default_teardown
}

# refused PATH...: user B may neither read nor list any of them.
refused() {
	local p
	for p in "$@"; do
		run sh_errno_as $B $B read "$p"
		[ "$output" = EACCES ] || [ "$output" = EISDIR ] || fail "$p: B got $output"
		if [ -d "$MNT/$p" ]; then
			run sh_as $B $B ls "$p"
			assert_failure
		fi
	done
}

@test "after a stranger renames a private agent, the past under the old name is still the owner's" {
	sh_as $B $B mv -T open/c open/x
	refused ".at/$T/open/c/k" ".at/$T/open/c" ".history/open/c/k/1"
	# The owner, and root, still read it.
	run sh_as $A $A cat ".at/$T/open/c/k" ".history/open/c/k/1"
	assert_output $'secret\nsecret'
	[ "$(cat "$MNT/.at/$T/open/c/k")" = secret ]
	# Under the new name the records moved along: closed as well.
	now=$(sh_probe_ts)
	refused ".at/$now/open/x/k" "open/x/k"
}

@test "after the owner removes the keys and the agent, its past stays the owner's" {
	sh_as $A $A rm open/c/k
	sh_as $A $A rmdir open/c
	run ls -ld "$MNT/open/c"
	assert_output --partial "drwxrwxrwx" # an agent without a record: its namespace's mode
	refused ".at/$T/open/c/k" ".history/open/c/k/1"
	run sh_as $A $A cat ".at/$T/open/c/k"
	assert_output secret
}

@test "a value written while the agent was public stays readable; one written while private does not, after it opens again" {
	chmod 0755 "$MNT/open/c"
	sh_as $A $A sh -c 'echo public >open/c/p'
	tp=$(sh_xattr commit_ts "$MNT/open/c/p")
	chmod 0700 "$MNT/open/c"
	sh_as $A $A sh -c 'echo private >open/c/p'
	tq=$(sh_xattr commit_ts "$MNT/open/c/p")
	chmod 0755 "$MNT/open/c"
	run sh_as $B $B cat ".at/$tp/open/c/p" ".history/open/c/p/1"
	assert_output $'public\npublic'
	refused ".at/$tq/open/c/p" ".history/open/c/p/2" ".at/$T/open/c/k"
	# What was written while private stays closed in later views of the past too.
	refused ".at/$(sh_probe_ts)/open/c/p"
	# Today's mode counts too: closed again, nothing of the past is readable.
	chmod 0700 "$MNT/open/c"
	refused ".at/$tp/open/c/p" ".history/open/c/p/1"
}

@test "a key's own mode of its time counts: a value written while its key was 0600 stays closed in .at after the key is gone" {
	chmod 0755 "$MNT/open/c"
	sh_as $A $A sh -c 'echo first >open/c/m && chmod 0600 open/c/m && echo mine >open/c/m'
	tm=$(sh_xattr commit_ts "$MNT/open/c/m")
	sh_as $A $A rm open/c/m
	sh_as $A $A sh -c 'echo other >open/c/m' # the same name again, 0644
	run sh_as $B $B cat open/c/m
	assert_output other
	refused ".at/$tm/open/c/m" ".history/open/c/m/2"
	run sh_as $A $A cat ".at/$tm/open/c/m"
	assert_output mine
	run sh_as $B $B cat ".history/open/c/m/1" # written while the key was 0644
	assert_output first
}

@test "a transaction begun before a private agent is renamed away does not show its keys under the old name" {
	sh_as $B $B mkdir .tx/b
	run sh_errno_as $B $B read .tx/b/open/c/k
	assert_output EACCES
	mv -T "$MNT/open/c" "$MNT/open/x"
	refused .tx/b/open/c/k .tx/b/open/c
	# What the transaction stages under the old name is its own to read back.
	sh_as $B $B sh -c 'echo mine >.tx/b/open/c/new'
	run sh_as $B $B cat .tx/b/open/c/new
	assert_output mine
	run sh_as $A $A cat open/x/k
	assert_output secret
}

@test "an agent's event stream shows another user only the ops it could read then and can now, and no size" {
	sh_as $B $B mv -T open/c open/x
	run sh_as $B $B cat .events/open/c.jsonl
	assert_success
	refute_output --partial secret
	assert_output --partial '"op":"attr"' # the rename cleared the record: B may read that
	run sh_as $B $B timeout 2 cat .follow/open/c.jsonl
	refute_output --partial secret
	run sh_as $B $B stat -c %s .events/open/c.jsonl
	assert_output 0
	# statehousectl reads the same views.
	run sh_as $B $B "$STATEHOUSECTL" -m . --ns open replay c
	refute_output --partial secret
	run sh_as $B $B "$STATEHOUSECTL" -m . --ns open history c k
	refute_output --partial secret
	# Root, and the owner, read all of it.
	grep -q secret "$MNT/.events/open/c.jsonl"
	run sh_as $A $A cat .events/open/c.jsonl
	assert_output --partial secret
	run sh_errno_as $B $B read .events/open/x.jsonl
	assert_output EACCES
}

@test "after root renames the namespace, the past under the old names stays the owner's" {
	mv -T "$MNT/open" "$MNT/moved"
	refused ".at/$T/open/c/k" ".history/open/c/k/1"
	run sh_as $B $B cat .events/open/c.jsonl
	refute_output --partial secret
	run sh_as $A $A cat ".at/$T/open/c/k"
	assert_output secret
}
