#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Everyday tools inside a mount: tar, cp -a, rsync, git, an editor's save.  Each does the
# same on a tmpfs copy, and the two results must match byte for byte (diff -r).

setup() {
	load helper
	sh_default_setup
	REF="$SH_TMP/ref"
	mkdir -p "$REF"
	mount -t tmpfs -o mode=0755 tmpfs "$REF"
	A="$MNT/ns/a"
	mkdir -p "$A"
}

teardown() {
	umount "$REF" 2>/dev/null || umount -l "$REF" 2>/dev/null || true
	sh_default_teardown
}

# make_tree DIR: several files, nested directories, an empty file, binary content.
make_tree() {
	mkdir -p "$1/d1/d2/d3" "$1/other"
	echo hello >"$1/a.txt"
	printf 'x\0y\377\n' >"$1/d1/nul"
	head -c 70000 /dev/urandom >"$1/bin.dat"
	: >"$1/empty"
	echo deep >"$1/d1/d2/d3/deep.txt"
	seq 1 5000 >"$1/other/numbers"
}

# An empty file made by create and close commits at its release, a moment after close
# returns (statehouse(5)): wait for it before comparing.
wait_empty() {
	sh_wait_until 10 test -e "$1/empty"
}

@test "tar x of an archive made from a tmpfs tree gives the same tree, byte for byte" {
	make_tree "$REF/src"
	tar -C "$REF/src" -cf "$REF/t.tar" .
	mkdir "$REF/out"
	tar -C "$REF/out" -xf "$REF/t.tar"
	run tar -C "$A" -xf "$REF/t.tar"
	assert_success
	wait_empty "$A"
	diff -r "$REF/out" "$A"
	sh_remount
	diff -r "$REF/out" "$A"
}

@test "cp -a of a tree gives the same tree, byte for byte" {
	make_tree "$REF/src"
	cp -a "$REF/src" "$REF/copy"
	run cp -a "$REF/src" "$A/copy"
	assert_success
	wait_empty "$A/copy"
	diff -r "$REF/copy" "$A/copy"
}

@test "rsync -a of a tree (temporary file, fchmod, rename) gives the same tree and modes, and a second run changes nothing" {
	make_tree "$REF/src"
	chmod 0755 "$REF/src/a.txt"
	chmod 0600 "$REF/src/d1/nul"
	rsync -a "$REF/src/" "$REF/copy/"
	run rsync -a "$REF/src/" "$A/copy/"
	assert_success
	wait_empty "$A/copy"
	diff -r "$REF/copy" "$A/copy"
	[ "$(cd "$REF/copy" && find . -type f -printf '%p %m\n' | sort)" = \
		"$(cd "$A/copy" && find . -type f -printf '%p %m\n' | sort)" ]
	v=$(sh_xattr version "$A/copy/bin.dat")
	run rsync -a --checksum "$REF/src/" "$A/copy/"
	assert_success
	assert_equal "$(sh_xattr version "$A/copy/bin.dat")" "$v"
}

# git with fixed dates, so both repositories make the same commit.  Automatic maintenance
# is off: its objects/maintenance.lock is unlinked while still open, which works, but
# would make the runs differ in timing only.
git_env() {
	env GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t \
		GIT_COMMITTER_EMAIL=t@example.org GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' \
		GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' git -c maintenance.auto=false "$@"
}

git_add_commit() {
	git_env -C "$1" add -A && git_env -C "$1" commit -q -m first && git -C "$1" rev-parse HEAD
}

@test "git init, add and commit in an agent directory make the same commit as on tmpfs" {
	make_tree "$REF/repo"
	cp -a "$REF/repo" "$A/repo"
	wait_empty "$A/repo"
	git init -q -b main "$REF/repo"
	run git init -q -b main "$A/repo"
	assert_success
	run git -C "$A/repo" config core.filemode
	assert_output true # git's probe: chmod of a file in .git works
	ref=$(git_add_commit "$REF/repo")
	run git_add_commit "$A/repo"
	assert_success
	assert_output "$ref"
	run git -C "$A/repo" fsck --strict
	assert_success
	run git -C "$A/repo" log --format=%H
	assert_output "$ref"
	run git -C "$A/repo" status --porcelain
	assert_output ""
	diff -r "$REF/repo/.git/objects" "$A/repo/.git/objects"
	diff -r "$REF/repo/.git/hooks" "$A/repo/.git/hooks"
	[ "$(cd "$REF/repo/.git/hooks" && find . -type f -printf '%p %m\n' | sort)" = \
		"$(cd "$A/repo/.git/hooks" && find . -type f -printf '%p %m\n' | sort)" ]
	sh_remount
	run git -C "$A/repo" status --porcelain
	assert_output ""
	run git -C "$A/repo" fsck --strict
	assert_success
}

# An editor's save: a temporary file, fsync, rename over the original, fsync the directory.
editor_save() {
	"$SH_PYTHON" - "$1" "$2" <<'PY'
import os, sys
d, name = os.path.split(sys.argv[1])
tmp = os.path.join(d, "." + name + ".tmp")
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, sys.argv[2].encode())
os.fsync(fd)
os.close(fd)
os.rename(tmp, sys.argv[1])
dfd = os.open(d, os.O_RDONLY)
os.fsync(dfd)
os.close(dfd)
PY
}

@test "a save by temporary file, fsync and rename over the original replaces it in one piece" {
	mkdir "$REF/e"
	for dir in "$REF/e" "$A"; do
		printf 'old\n' >"$dir/notes.txt"
		editor_save "$dir/notes.txt" "new content
second line
"
	done
	diff -r "$REF/e" "$A"
	assert_equal "$(sh_xattr version "$A/notes.txt")" 2
}

@test "vim -es -n edits a file in place as on tmpfs" {
	command -v vim >/dev/null || sh_skip "vim is not installed"
	mkdir "$REF/v"
	for dir in "$REF/v" "$A"; do
		printf 'line one\nline two\n' >"$dir/v.txt"
		vim -es -n -u NONE -c '%s/two/2/' -c 'wq' "$dir/v.txt"
	done
	diff -r "$REF/v" "$A"
	assert_equal "$(cat "$A/v.txt")" "line one
line 2"
}
