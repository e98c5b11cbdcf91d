#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Everyday file gestures behave as on a local file system: a created file exists from
# the moment open(O_CREAT) returns, a new file's times are its creation, an unlinked
# key stays unlinked when a handle on it closes, and a writer sees its own size.

setup() {
	load helper
	sh_default_setup
	A="$MNT/ns/agent"
	mkdir -p "$A"
}

teardown() {
	sh_default_teardown
}

# py SCRIPT ARGS...: run a python3 snippet (the syscall-level cases).
py() {
	local s=$1
	shift
	"$SH_PYTHON" -c "import os, sys, errno, time, tempfile
$s" "$@"
}

@test "touch then an append to the new key keeps the appended bytes, every time" {
	for i in $(seq 1 20); do
		touch "$A/f$i" && echo x >>"$A/f$i"
	done
	for i in $(seq 1 20); do
		[ "$(cat "$A/f$i")" = x ] || { echo "f$i: '$(cat "$A/f$i")'" >&2; return 1; }
	done
}

@test "touch then rm of a new key succeeds and the key stays gone" {
	for i in $(seq 1 20); do
		touch "$A/k$i"
		rm "$A/k$i"
	done
	sh_probe_ts >/dev/null # every commit queued before it has landed
	run ls -A "$A"
	assert_success
	assert_output ''
}

@test "a file made by open(O_CREAT) can at once be truncated, opened and read by path" {
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.truncate(p, 0)
fd2 = os.open(p, os.O_WRONLY)
os.close(fd2)
fd3 = os.open(p, os.O_RDONLY)
assert os.read(fd3, 10) == b""
os.close(fd3)
os.close(fd)
print(os.stat(p).st_size)' "$A/new"
	assert_success
	assert_output 0
}

@test "a file made by open(O_CREAT) is listed in its directory at once" {
	run py '
d = sys.argv[1]
fd = os.open(d + "/new", os.O_CREAT | os.O_WRONLY, 0o644)
print(sorted(os.listdir(d)))
os.close(fd)' "$A"
	assert_success
	assert_output "['new']"
}

@test "a file made by open(O_CREAT) has no version attribute until it commits, then version 1" {
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
try:
    os.getxattr(p, "user.statehouse.version")
    print("has a version")
except OSError as e:
    print(errno.errorcode[e.errno])
os.write(fd, b"v")
os.close(fd)
print(os.getxattr(p, "user.statehouse.version").decode())' "$A/x"
	assert_success
	assert_output $'ENODATA\n1'
}

@test "a new key made and removed at once: unlink after open(O_CREAT) succeeds" {
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
os.unlink(p)
os.write(fd, b"data")
os.close(fd)
try:
    os.stat(p)
    print("exists")
except OSError as e:
    print(errno.errorcode[e.errno])' "$A/tmp"
	assert_success
	assert_output ENOENT
	sh_probe_ts >/dev/null
	run sh_errno stat "$A/tmp"
	assert_output ENOENT
}

@test "tempfile.TemporaryFile in an agent directory writes and reads back" {
	run py '
with tempfile.TemporaryFile(dir=sys.argv[1]) as f:
    f.write(b"hello")
    f.seek(0)
    print(f.read().decode())' "$A"
	assert_success
	assert_output hello
	sh_probe_ts >/dev/null
	run ls -A "$A"
	assert_output ''
}

@test "a new key's mtime, ctime and atime are its creation, while open and after the close" {
	sleep 1.1 # the daemon's start time is then an earlier second than the creation
	run py '
p = sys.argv[1]
t0 = int(time.time())
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
st = os.stat(p)
print(st.st_mtime >= t0, st.st_ctime >= t0, st.st_atime >= t0)
os.close(fd)
fd = os.open(p, os.O_RDONLY)
os.close(fd)
st = os.stat(p)
print(st.st_mtime >= t0, st.st_ctime >= t0, st.st_atime >= t0)' "$A/t"
	assert_success
	assert_output $'True True True\nTrue True True'
}

@test "an unlinked key does not come back when a write handle open on it closes" {
	echo old >"$A/r"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
os.write(fd, b"new")
os.unlink(p)
os.close(fd)' "$A/r"
	assert_success
	sh_probe_ts >/dev/null
	run sh_errno stat "$A/r"
	assert_output ENOENT
	run ls -A "$A"
	assert_output ''
}

@test "fstat of a write handle on an unlinked key reports nlink 0" {
	echo old >"$A/r"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
os.unlink(p)
st = os.fstat(fd)
print(st.st_nlink)
os.close(fd)' "$A/r"
	assert_success
	assert_output 0
}

@test "a writer sees its own size after O_TRUNC, ftruncate and writes, at fstat and SEEK_END" {
	printf abc >"$A/s"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
a = os.fstat(fd).st_size
os.ftruncate(fd, 10)
b = os.fstat(fd).st_size
os.write(fd, b"xy")
os.ftruncate(fd, 4)
c = os.fstat(fd).st_size
e = os.lseek(fd, 0, os.SEEK_END)
os.close(fd)
print(a, b, c, e)' "$A/s"
	assert_success
	assert_output '0 10 4 4'
	run cat "$A/s"
	assert_output "$(printf 'xy\0\0')"
}

@test "writes at SEEK_END through one descriptor append after the writer's own bytes" {
	printf abc >"$A/s"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY)
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, b"def")
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, b"ghi")
print(os.fstat(fd).st_size)
os.close(fd)' "$A/s"
	assert_success
	assert_output 9
	run cat "$A/s"
	assert_output abcdefghi
}

@test "a reader of a key keeps the committed size while a writer holds uncommitted bytes" {
	printf abc >"$A/s"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"defgh")
r = os.open(p, os.O_RDONLY)
print(os.read(r, 100).decode())
os.close(r)
os.close(fd)' "$A/s"
	assert_success
	assert_output abc
	run cat "$A/s"
	assert_output abcdefgh
}

@test "in a transaction's view a writer sees its own size after writes and ftruncate" {
	T="$MNT/.tx/t1"
	mkdir "$T"
	mkdir -p "$T/ns/agent"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"hello")
a = os.fstat(fd).st_size
os.ftruncate(fd, 100)
b = os.fstat(fd).st_size
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, b"!")
c = os.fstat(fd).st_size
os.close(fd)
print(a, b, c, os.stat(p).st_size)' "$T/ns/agent/v"
	assert_success
	assert_output '5 100 101 101'
}

@test "in a transaction's view a created file exists at once and an unlinked one stays gone" {
	T="$MNT/.tx/t2"
	mkdir "$T"
	mkdir -p "$T/ns/agent"
	touch "$T/ns/agent/f"
	echo x >>"$T/ns/agent/f"
	[ "$(cat "$T/ns/agent/f")" = x ]
	echo old >"$T/ns/agent/r"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
os.write(fd, b"new")
os.unlink(p)
os.close(fd)' "$T/ns/agent/r"
	assert_success
	run sh_errno stat "$T/ns/agent/r"
	assert_output ENOENT
}

@test "a read descriptor of an unlinked key still reads its value and fstat shows nlink 0" {
	echo kept >"$A/u"
	run py '
p = sys.argv[1]
fd = os.open(p, os.O_RDONLY)
os.unlink(p)
st = os.fstat(fd)
print(st.st_nlink, st.st_size)
print(os.pread(fd, 100, 0).decode().strip())
os.close(fd)' "$A/u"
	assert_success
	assert_output $'0 5\nkept'
	run sh_errno stat "$A/u"
	assert_output ENOENT
}

@test "a new key renamed while its creating descriptor is open takes that descriptor's value" {
	run py '
a, b = sys.argv[1], sys.argv[2]
fd = os.open(a, os.O_CREAT | os.O_WRONLY, 0o644)
os.rename(a, b)
os.write(fd, b"moved")
os.close(fd)
print(open(b).read())' "$A/a" "$A/b"
	assert_success
	assert_output moved
	run sh_errno stat "$A/a"
	assert_output ENOENT
	[ "$(sh_xattr version "$A/b")" -ge 1 ]
}

@test "in a transaction's view a new file's times are when it was staged" {
	T="$MNT/.tx/t3"
	mkdir "$T"
	mkdir -p "$T/ns/agent"
	sleep 1.1 # the daemon's start time is then an earlier second than the creation
	t0=$(date +%s)
	touch "$T/ns/agent/n"
	[ "$(stat -c %Y "$T/ns/agent/n")" -ge "$t0" ]
	[ "$(stat -c %Z "$T/ns/agent/n")" -ge "$t0" ]
}

@test "vim edits a key and leaves no swap-file probe behind" {
	command -v vim >/dev/null || { sh_skip "vim is not installed"; return; }
	echo hello >"$A/FILE"
	for i in 1 2 3; do
		(cd "$A" && HOME="$SH_TMP" vim -u NONE -i NONE -N -es -c 'normal Aworld' -c wq FILE </dev/null)
	done
	sh_probe_ts >/dev/null
	run ls -A "$A"
	assert_output FILE
	run cat "$A/FILE"
	assert_output helloworldworldworld
}
