#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Commit multi-key transactions in a loop until the mount stops answering.

Usage: commit_loop.py MNT AGENT ACKFILE

Transaction i (i = 1, 2, ...) is .tx/AGENT-i; it writes str(i) to default/AGENT/a, b and c
and commits by renaming .commit.pending onto .commit. Once rename() has returned and .commit
has been read, the line "i commit_ts" is appended to ACKFILE (flushed at once): every line
there is a commit the daemon acknowledged. Stops at the first error (the daemon was killed),
or after 100000 commits or 120 s, whichever comes first.
"""
import json
import os
import sys
import time


def main():
    mnt, agent, ackfile = sys.argv[1:4]
    deadline = time.monotonic() + 120
    with open(ackfile, "a", buffering=1) as ack:
        for i in range(1, 100001):
            if time.monotonic() > deadline:
                return 0
            t = f"{mnt}/.tx/{agent}-{i}"
            try:
                os.mkdir(t)
                os.makedirs(f"{t}/default/{agent}", exist_ok=True)
                for k in ("a", "b", "c"):
                    with open(f"{t}/default/{agent}/{k}", "w") as f:
                        f.write(str(i))
                os.rename(f"{t}/.commit.pending", f"{t}/.commit")
                with open(f"{t}/.commit") as f:
                    ts = json.load(f)["commit_ts"]
                ack.write(f"{i} {ts}\n")
                os.rmdir(t)
            except OSError as e:
                print(f"commit_loop {agent}: stopped at {i}: {e}", file=sys.stderr)
                return 0
    return 0


sys.exit(main())
