#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run one file-system call and print the errno name it failed with, or OK.

Shell builtins hide some errors (bash ignores close() failures), so tests that check an
exact errno go through this helper.  Usage: errno.py OP PATH [ARG]

  read PATH           open O_RDONLY + read all
  write PATH DATA     open O_WRONLY|O_CREAT|O_TRUNC, write DATA, close
  writen PATH N       write N bytes of 'x' (one write() call per 64 KiB)
  create PATH         open O_WRONLY|O_CREAT|O_EXCL, close
  mkdir PATH / rmdir PATH / unlink PATH / stat PATH
  rename SRC DST      rename(2) directly (mv would copy across EXDEV)
  setxattr PATH NAME  setxattr(2) NAME to the value "1"
  chmod PATH MODE     chmod(2), MODE in octal
  chown PATH UID:GID  chown(2) (-1 leaves one unchanged)
  symlink PATH TARGET / link PATH SRC / mknod PATH / mkfifo PATH: create PATH so
  exchange A B        renameat2(A, B, RENAME_EXCHANGE)
  fallocate PATH N[:MODE]  open O_WRONLY, fallocate(fd, MODE (default 0), 0, N), close
"""
import ctypes
import errno
import os
import stat
import sys

AT_FDCWD = -100
RENAME_EXCHANGE = 2
LIBC = ctypes.CDLL(None, use_errno=True)


def check(rc):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def exchange(a, b):
    check(LIBC.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE))


def fallocate(path, arg):
    n, _, mode = arg.partition(":")
    fd = os.open(path, os.O_WRONLY)
    try:
        check(LIBC.fallocate(fd, int(mode or 0), ctypes.c_long(0), ctypes.c_long(int(n))))
    finally:
        os.close(fd)


def run(op, path, arg=None):
    if op == "read":
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 65536):
                pass
        finally:
            os.close(fd)
    elif op in ("write", "writen"):
        data = arg.encode() if op == "write" else None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if data is not None:
                os.write(fd, data)
            else:
                left = int(arg)
                while left > 0:
                    n = min(left, 65536)
                    os.write(fd, b"x" * n)
                    left -= n
        finally:
            os.close(fd)
    elif op == "create":
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    elif op == "mkdir":
        os.mkdir(path)
    elif op == "rmdir":
        os.rmdir(path)
    elif op == "unlink":
        os.unlink(path)
    elif op == "stat":
        os.stat(path)
    elif op == "rename":
        os.rename(path, arg)
    elif op == "setxattr":
        os.setxattr(path, arg, b"1")
    elif op == "chmod":
        os.chmod(path, int(arg, 8))
    elif op == "symlink":
        os.symlink(arg, path)
    elif op == "link":
        os.link(arg, path)
    elif op == "mknod":
        os.mknod(path, 0o644 | stat.S_IFREG)
    elif op == "mkfifo":
        os.mkfifo(path)
    elif op == "exchange":
        exchange(path, arg)
    elif op == "fallocate":
        fallocate(path, arg)
    elif op == "chown":
        uid, gid = arg.split(":")
        os.chown(path, int(uid), int(gid))
    else:
        print("usage error: unknown op " + op, file=sys.stderr)
        sys.exit(2)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        run(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
        return
    print("OK")


main()
