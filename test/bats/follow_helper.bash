# SPDX-License-Identifier: MIT
# Helpers of the tests that read .follow streams (80-events, 82-prefix-streams): readers
# in the background that teardown kills, waits on their output, and the Python snippets
# that check EINTR and poll on a blocked read.  Load after helper; a test file sets
# BG_PIDS=() in setup and calls sh_kill_bg in teardown.

# sh_kill_bg: kill every background reader or writer (a blocked .follow read ends on a
# fatal signal), or the unmount could not finish.
sh_kill_bg() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || true
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${BG_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}

# bg CMD...: run CMD in the background (fd 3 closed, or bats waits for it); teardown kills it.
bg() {
	"$@" 3>&- &
	BG_PIDS+=("$!")
}

# bg_group SCRIPT ARGS...: run a bash SCRIPT (a pipeline) in its own process group, so that
# teardown kills every process of it.
bg_group() {
	setsid bash -c "$@" 3>&- &
	BG_PIDS+=("$!")
}

# nlines FILE: number of lines in FILE (0 when it does not exist yet).
nlines() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# has_lines FILE N: FILE holds at least N lines.
has_lines() {
	[ "$(nlines "$1")" -ge "$2" ]
}

# blocked_in_fuse PID: PID sleeps in a FUSE request (a .follow read waiting for a commit).
blocked_in_fuse() {
	local w
	w="$(cat "/proc/$1/wchan" 2>/dev/null)" || return 1
	[ "$w" = request_wait_answer ] && return 0
	# kernels that hide wchan: the read(2) syscall (0 on x86_64) in a sleeping process
	[ "$(uname -m)" = x86_64 ] && [ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = 0 ] &&
		[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = S ]
}

# ts_of FILE: the commit_ts of every line of FILE, one per line.
ts_of() {
	jq -r .commit_ts "$1"
}

# A .follow read through libc read(2) (ctypes: no PEP 475 retry), so an interrupted read
# shows its errno. SIGALRM has a handler that returns: the first read, interrupted by it,
# must fail with EINTR and return no byte; then SIGALRM is ignored and a second read must
# return whole lines. Prints "first: EINTR" (or what it got) and the second read's bytes.
PY_EINTR='
import ctypes, errno, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.read.restype = ctypes.c_ssize_t
signal.signal(signal.SIGALRM, lambda sig, frame: None)
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = ctypes.create_string_buffer(65536)
out = open(sys.argv[2], "w", buffering=1)
n = libc.read(fd, buf, 65536)
if n < 0:
    out.write("first: " + errno.errorcode.get(ctypes.get_errno(), "?") + "\n")
else:
    out.write("first: read %d bytes: %r\n" % (n, buf.raw[:n]))
signal.signal(signal.SIGALRM, signal.SIG_IGN)
n = libc.read(fd, buf, 65536)
if n < 0:
    out.write("second: " + errno.errorcode.get(ctypes.get_errno(), "?") + "\n")
else:
    out.write(buf.raw[:n].decode())
'

# select() then poll() on a .follow file that is at its end: neither reports it readable
# with a zero timeout; then each waits (60 s deadline against a hang, not a measurement)
# after writing a marker line, and reads what woke it. Argv: PATH OUT MARKER1 MARKER2.
PY_POLL='
import os, select, sys
path, out, m1, m2 = sys.argv[1:5]
fd = os.open(path, os.O_RDONLY)
o = open(out, "w", buffering=1)
r, _, _ = select.select([fd], [], [], 0)
o.write("select before: %s\n" % ("readable" if r else "not readable"))
p = select.poll()
p.register(fd, select.POLLIN)
o.write("poll before: %s\n" % ("readable" if p.poll(0) else "not readable"))
open(m1, "w").close()
r, _, _ = select.select([fd], [], [], 60)
o.write("select: %s\n" % ("readable" if r else "timed out"))
o.write(os.read(fd, 65536).decode())
o.write("poll after read: %s\n" % ("readable" if p.poll(0) else "not readable"))
open(m2, "w").close()
ev = p.poll(60000)
o.write("poll: %s\n" % ("readable" if ev and ev[0][1] & select.POLLIN else "timed out"))
o.write(os.read(fd, 65536).decode())
'
