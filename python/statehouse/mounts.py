# SPDX-License-Identifier: MIT
"""Which statehouse mount a client uses: the rule statehousectl(1) follows.

The mount named (url=), else $STATEHOUSE_MOUNT, else the only statehouse mount in
/proc/self/mountinfo (file system type fuse.statehouse, the topmost mount at each
mountpoint). None or several, and none named, is an error that says what to do; so is a
url that is a network address (the SDK's "localhost:50051"), since a mount is a path.
"""

import os
import re
from typing import List, Optional, Tuple

from .exceptions import ConnectionError

FSTYPE = "fuse.statehouse"
MOUNTINFO = "/proc/self/mountinfo"

# "http://host", "grpc://host:1", "dns:///host:1", "unix:/run/sock": a scheme, not a path.
_SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|(?:dns|unix|unix-abstract|ipv4|ipv6|vsock):)")
# "localhost:50051", "10.0.0.5:50051", "[::1]:50051": a host and a port.
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-3][0-7][0-7])", lambda m: chr(int(m.group(1), 8)), field)


def statehouse_mounts(mountinfo: str = MOUNTINFO) -> List[Tuple[str, str]]:
    """(mountpoint, data dir) of every statehouse mount, in mountinfo's order. Only the
    topmost mount at a mountpoint counts: a dead mount under a live one (a daemon that
    restarted without an unmount) is not reachable."""
    entries = []
    with open(mountinfo, "rb") as f:
        for raw in f:
            line = os.fsdecode(raw.rstrip(b"\n"))
            head, sep, tail = line.partition(" - ")
            fields, rest = head.split(" "), tail.split(" ")
            if not sep or len(fields) < 5 or len(rest) < 2:
                continue
            entries.append((_unescape(fields[4]), rest[0], _unescape(rest[1])))
    found = []
    for i, (mnt, fstype, source) in enumerate(entries):
        covered = any(later[0] == mnt for later in entries[i + 1 :])
        if fstype == FSTYPE and not covered:
            found.append((mnt, source))
    return found


def is_address(url: str) -> bool:
    """Whether url is a network address (a scheme, or host:port) and no path that
    exists: the SDK's daemon address, which a mount never is."""
    if not (_SCHEME.match(url) or _HOST_PORT.match(url)):
        return False
    try:
        os.lstat(url)
        return False  # a directory really named so
    except OSError:
        return True


def choose_mount(url: Optional[str]) -> Tuple[str, str]:
    """The mountpoint a client of url uses, and where it came from ("url",
    "$STATEHOUSE_MOUNT" or "mountinfo"). ConnectionError when there is none to use."""
    origin = "url"
    if url is None:
        env = os.environ.get("STATEHOUSE_MOUNT")
        if env:
            url, origin = env, "$STATEHOUSE_MOUNT"
    if url is None:
        return _only_mount(), "mountinfo"
    if not isinstance(url, (str, os.PathLike)):
        raise TypeError(f"url must be a path, not {type(url).__name__}")
    url = os.fsdecode(os.fspath(url))
    named = origin
    if not url:
        raise ConnectionError(
            f"cannot use an empty {named}: pass the MOUNTPOINT of a statehoused mount"
        )
    if is_address(url):
        raise ConnectionError(
            f"cannot use {named} '{url}': it is a network address, but statehouse is "
            "reached through its mount, not over the network: pass url= the MOUNTPOINT "
            "of a statehoused mount (statehoused DATADIR MOUNTPOINT; 'statehousectl "
            "status' lists them), or set STATEHOUSE_MOUNT to it"
        )
    return url, origin


def _only_mount() -> str:
    try:
        mounts = statehouse_mounts()
    except OSError as e:
        raise ConnectionError(f"cannot read '{MOUNTINFO}': {e.strerror}", e.errno) from None
    if len(mounts) == 1:
        return mounts[0][0]
    if not mounts:
        raise ConnectionError(
            "no statehouse mount: mount one with 'statehousectl mount DATADIR MOUNTPOINT', "
            "or name one with url= or STATEHOUSE_MOUNT"
        )
    listed = "".join(f"\n  {mnt} (data dir {data})" for mnt, data in mounts)
    raise ConnectionError(
        f"{len(mounts)} statehouse mounts; choose one with url= or STATEHOUSE_MOUNT:{listed}"
    )
