# SPDX-License-Identifier: MIT
"""The Statehouse Python SDK 0.1 API on a statehoused mount, in plain file system calls.

Reads are open/read and getxattr on <ns>/<agent>/<key>; a transaction is a directory
.tx/NAME that rename(.commit.pending, .commit) commits; the past comes from .history/ and
.events/ (statehouse(5) describes every path). Standard library only.
"""

import base64
import errno as E
import json
import os
import secrets
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .exceptions import ConnectionError, NotFoundError, StatehouseError, TransactionError
from .formatting import format_operation
from .mounts import choose_mount
from .types import Operation, ReplayEvent, StateResult

XATTR_VERSION = "user.statehouse.version"
XATTR_COMMIT_TS = "user.statehouse.commit_ts"

# A read of <ns>/<agent>/<key> that fails with one of these found no key there: ENOTDIR
# when part of the path is a key, EISDIR or ENODATA (no xattrs) when it is a directory,
# i.e. only a prefix of other keys.
_MISSING = (E.ENOENT, E.ENOTDIR, E.EISDIR, E.ENODATA)
# The mount's daemon is gone (killed) or the mount was aborted.
_DEAD = (E.ENOTCONN, E.ECONNABORTED)
# get_state reads a key's version before and after its value and tries again when a commit
# came in between; only a key rewritten without pause for this many reads gives up.
_READ_TRIES = 100
# A path component, and the encoded bytes of a .history segment directory (encode_key).
_NAME_MAX = 255
_SEGMENT_MAX = 253
_BEGIN_TRIES = 8


def encode_key(key: str) -> str:
    """The key's path below .history/<ns>/<agent>/ (statehouse(5)): "%" as "%25" and "/"
    as "%2F" in one name; a name over 255 bytes goes on through segment directories,
    each the next at most 253 bytes and "%+", cut neither inside an escape nor before a
    UTF-8 continuation byte (at most 3 bytes given back for that)."""
    rest = os.fsencode(key).replace(b"%", b"%25").replace(b"/", b"%2F")
    segments = []
    while len(rest) > _NAME_MAX:
        cut = _SEGMENT_MAX
        for _ in range(3):
            if rest[cut] & 0xC0 != 0x80:
                break
            cut -= 1
        if rest[cut - 1] == ord("%"):
            cut -= 1
        elif rest[cut - 2] == ord("%"):
            cut -= 2
        segments.append(rest[:cut] + b"%+")
        rest = rest[cut:]
    segments.append(rest)
    return os.fsdecode(b"/".join(segments))


def decode_value(raw: bytes) -> Any:
    """A stored value as Python: the parsed JSON when the bytes are JSON (a value the
    module wrote is always a dict), else the text as str, else the bytes themselves.
    The rule of .events' "value" and "value_base64" (statehouse(5))."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return text


def encode_value(value: Dict[str, Any]) -> bytes:
    """The bytes the module stores for value: compact JSON, UTF-8, one final newline (so
    cat prints it as a line). NaN and infinities are not JSON and raise ValueError."""
    if not isinstance(value, dict):
        raise TypeError(f"value must be a dict, not {type(value).__name__}")
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def json_name(obj: Dict[str, Any], field: str) -> Optional[str]:
    """A name (namespace, agent, key, transaction) from the daemon's JSON: obj[field], or
    obj[field + "_base64"] when the name's bytes are not UTF-8 (statehouse(5)), decoded
    as os.fsdecode does. Such a str names the same bytes again in any path (os.fsencode);
    None when the object has neither."""
    if field in obj:
        return obj[field]
    raw = obj.get(field + "_base64")
    if raw is None:
        return None
    return os.fsdecode(base64.b64decode(raw, validate=True))


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON: such bytes are text.
    raise ValueError(f"not JSON: {name}")


def _check_name(what: str, name: str) -> None:
    # A namespace or agent is one path component; anything else would name another place.
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"invalid {what} {name!r}: must be one non-empty path component")


def _check_key(key: str) -> None:
    # "a/../../b" would leave the agent's directory: only plain components are keys.
    if (
        not isinstance(key, str)
        or not key
        or "\0" in key
        or any(p in ("", ".", "..") for p in key.split("/"))
    ):
        raise ValueError(
            f"invalid key {key!r}: must be non-empty components joined by '/', none '.' or '..'"
        )


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    # close() is where the daemon stages (or reports a poisoned write): its error counts.
    os.close(fd)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _read_key(path: str) -> bytes:
    """A live key's bytes from the daemon itself. The kernel keeps a key's pages until
    the daemon invalidates them, a moment after the commit that replaced them is already
    visible (in getxattr too): a cached read then pairs old bytes with the new version."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as e:
        if e.errno != E.EINVAL:
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # no O_DIRECT on this kernel
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


class Transaction:
    """A transaction: writes and deletes that become visible together at one commit_ts.

    Each write and delete is staged in the daemon at once (a file written or removed in
    .tx/NAME/), not buffered in Python: an invalid key, a value over max_value_bytes, an
    expired or conflicting transaction fail at the call that meets them, and the staged
    operations live in the daemon, which expires the transaction if the caller vanishes.

    As a context manager it commits when the block ends normally and aborts when it
    raises. Not safe to share between threads.
    """

    def __init__(self, client: "Statehouse", txn_id: str, namespace: str = "default"):
        self._client = client
        self._txn_id = txn_id
        self._namespace = namespace
        self._state = "open"  # -> committed (commit), aborted (abort), failed (commit)

    @property
    def txn_id(self) -> str:
        """The transaction's name below .tx/, and its "txn" in .events and .history."""
        return self._txn_id

    @property
    def namespace(self) -> str:
        return self._namespace

    def write(
        self,
        agent_id: str,
        key: str,
        value: Dict[str, Any],
        expect_version: Optional[int] = None,
    ) -> None:
        """Stage value (a dict, stored as JSON) as the new value of agent_id's key.

        With expect_version the commit applies only if the key is then at that version
        (0: only if it does not exist), checked at commit with everything else: when it
        is not, commit() raises TransactionError with reason "precondition" and key
        naming it, and applies nothing (.tx/NAME/.expect/ in statehouse(5))."""
        _check_name("agent_id", agent_id)
        _check_key(key)
        if expect_version is not None and (
            isinstance(expect_version, bool)
            or not isinstance(expect_version, int)
            or expect_version < 0
        ):
            raise ValueError(f"expect_version must be an int >= 0, not {expect_version!r}")
        data = encode_value(value)
        what = f"stage write of '{self._namespace}/{agent_id}/{key}'"
        self._check_open(what)
        path = self._dir(self._namespace, agent_id, key)
        try:
            if expect_version is not None:
                expect = self._dir(".expect", self._namespace, agent_id, key)
                if "/" in key:
                    os.makedirs(os.path.dirname(expect), exist_ok=True)
                _write_file(expect, str(expect_version).encode())
            if "/" in key:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_file(path, data)
        except OSError as e:
            raise self._error(e, what) from None

    def delete(self, agent_id: str, key: str) -> None:
        """Stage the delete of agent_id's key. A key the transaction does not see (never
        written, already deleted, or only a prefix of other keys) is no error, as in the
        SDK, whose daemon staged such a delete without looking: there is nothing to
        delete, so nothing is staged and the rest of the transaction commits as usual.
        An expired or vanished transaction still raises TransactionError."""
        _check_name("agent_id", agent_id)
        _check_key(key)
        what = f"stage delete of '{self._namespace}/{agent_id}/{key}'"
        self._check_open(what)
        try:
            os.unlink(self._dir(self._namespace, agent_id, key))
        except OSError as e:
            if e.errno in _MISSING and self._status().get("state") == "open":
                return
            raise self._error(e, what) from None

    def commit(self) -> int:
        """Commit every staged operation atomically and durably; returns the commit_ts.

        A conflict (ESTALE) or expiry (ETIMEDOUT) raises TransactionError with reason
        "conflict" or "expired" and applies nothing. Either way the transaction is over.
        """
        what = f"commit transaction '{self._txn_id}'"
        self._check_open(what)
        try:
            os.rename(self._dir(".commit.pending"), self._dir(".commit"))
        except OSError as e:
            err = self._error(e, what)
            self._state = "failed"
            self._remove()
            raise err from None
        # Point of no return: the commit is durable, whatever happens below.
        self._state = "committed"
        try:
            info = json.loads(_read_file(self._dir(".commit")))
        except OSError as e:
            raise self._client._error(
                e, "read the commit_ts of committed transaction", self._txn_id
            ) from None
        self._remove()
        return int(info["commit_ts"])

    def abort(self) -> None:
        """Discard the staged operations. Idempotent; TransactionError after a commit."""
        if self._state == "committed":
            raise TransactionError(
                f"cannot abort transaction '{self._txn_id}': it is already committed",
                reason="finished",
            )
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            os.rmdir(self._dir())
        except OSError as e:
            if e.errno == E.ENOENT:
                return
            raise self._error(e, f"abort transaction '{self._txn_id}'") from None

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._state != "open":
            return False
        if exc_type is None:
            self.commit()
            return False
        try:
            self.abort()
        except StatehouseError:
            # The caller's exception matters more; an unremoved transaction expires anyway.
            pass
        return False

    def __repr__(self) -> str:
        return f"<Transaction {self._txn_id!r} namespace={self._namespace!r} {self._state}>"

    def _dir(self, *parts: str) -> str:
        return self._client._path(".tx", self._txn_id, *parts)

    def _check_open(self, what: str) -> None:
        if self._state != "open":
            done = (
                "its commit already failed"
                if self._state == "failed"
                else f"is already {self._state}"
            )
            raise TransactionError(
                f"cannot {what}: transaction '{self._txn_id}' {done}", reason="finished"
            )

    def _exists(self) -> bool:
        try:
            os.stat(self._dir(".status"))
            return True
        except OSError:
            return False

    def _status(self) -> Dict[str, Any]:
        try:
            return json.loads(_read_file(self._dir(".status")))
        except (OSError, ValueError):
            return {}

    def _remove(self) -> None:
        # Clean-up only, after the outcome is decided: a failure leaves a directory the
        # daemon keeps until rmdir or restart, and must not hide the outcome.
        try:
            os.rmdir(self._dir())
        except (OSError, StatehouseError):
            pass

    def _error(self, e: OSError, what: str) -> StatehouseError:
        txn = self._txn_id
        if e.errno in _DEAD:
            return self._client._error(e, what, None)
        if e.errno == E.ESTALE:
            status = self._status()
            key = json_name(status, "key")
            if status.get("conflict") == "precondition":
                return TransactionError(
                    f"cannot {what}: precondition failed: key '{key}' was not at the "
                    f"expected version when transaction '{txn}' committed",
                    e.errno,
                    reason="precondition",
                    key=key,
                )
            return TransactionError(
                f"cannot {what}: conflict: key '{key}' was committed by another transaction "
                f"after transaction '{txn}' began",
                e.errno,
                reason="conflict",
                key=key,
            )
        if e.errno == E.ETIMEDOUT:
            timeout = self._status().get("timeout_ms", "?")
            return TransactionError(
                f"cannot {what}: transaction '{txn}' expired ({timeout} ms after it began)",
                e.errno,
                reason="expired",
            )
        if e.errno == E.ENOENT and not self._exists():
            return TransactionError(
                f"cannot {what}: no transaction '{txn}' (aborted or removed)", e.errno
            )
        return TransactionError(f"cannot {what} in transaction '{txn}': {e.strerror}", e.errno)


class Statehouse:
    """A client of one statehoused mount.

    url is the mount point, where the SDK took a daemon's host:port (such an address
    raises ConnectionError saying to pass the mount point). Without url: $STATEHOUSE_MOUNT,
    else the only statehouse mount there is, as statehousectl chooses (mounts.py).
    namespace is the default of every call that takes one. The mount must answer (.health
    and .version exist) or ConnectionError is raised here.
    """

    def __init__(self, url: Optional[str] = None, namespace: str = "default"):
        mount, origin = choose_mount(url)
        _check_name("namespace", namespace)
        self._mnt = os.path.abspath(mount)
        self._namespace = namespace
        self._closed = False
        for name in (".health", ".version"):
            try:
                os.stat(os.path.join(self._mnt, name))
            except OSError as e:
                if e.errno in _DEAD:
                    raise ConnectionError(
                        f"cannot reach statehouse mount '{self._mnt}': {e.strerror}", e.errno
                    ) from None
                given = "" if origin != "$STATEHOUSE_MOUNT" else " ($STATEHOUSE_MOUNT)"
                raise ConnectionError(
                    f"cannot use '{self._mnt}'{given}: not a statehouse mount "
                    f"(no {name}: {e.strerror})",
                    e.errno,
                ) from None

    @property
    def url(self) -> str:
        """The mount point, as an absolute path."""
        return self._mnt

    @property
    def namespace(self) -> str:
        return self._namespace

    def health(self) -> str:
        """Return "ok" once the daemon made a real round trip to its store. StatehouseError
        with errno EIO when the store does not answer, ConnectionError when the mount is
        dead."""
        try:
            return _read_file(self._path(".health")).decode("utf-8").strip()
        except OSError as e:
            raise self._error(e, "check the health of", self._mnt) from None

    def version(self) -> Tuple[str, Optional[str]]:
        """(version, git_sha) from .version; git_sha is None unless the daemon reports one."""
        try:
            info = json.loads(_read_file(self._path(".version")))
        except OSError as e:
            raise self._error(e, "read the version of", self._mnt) from None
        return str(info["version"]), info.get("git_sha")

    def close(self) -> None:
        """Stop using the mount (it stays mounted); later calls raise ConnectionError."""
        self._closed = True

    def __enter__(self) -> "Statehouse":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def begin_transaction(
        self, timeout_ms: Optional[int] = None, namespace: Optional[str] = None
    ) -> Transaction:
        """Begin a transaction (mkdir .tx/NAME); it sees the state as of now. timeout_ms
        replaces the daemon's default of 30 s (-o txn_timeout_ms=) for this one."""
        ns = namespace or self._namespace
        _check_name("namespace", ns)
        if timeout_ms is not None and (
            isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int)
        ):
            raise TypeError(f"timeout_ms must be an int, not {type(timeout_ms).__name__}")
        for _ in range(_BEGIN_TRIES):
            # pid and 48 random bits: unique among this host's clients, and shows in .tx
            # and the events which process began it.
            name = f"py-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                os.mkdir(self._path(".tx", name))
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise self._error(e, "begin transaction", name, TransactionError) from None
        else:
            raise TransactionError(
                f"cannot begin a transaction: {_BEGIN_TRIES} names in a row were taken", E.EEXIST
            )
        txn = Transaction(self, name, ns)
        if timeout_ms is not None:
            try:
                _write_file(txn._dir(".timeout_ms"), str(timeout_ms).encode())
            except OSError as e:
                err = txn._error(e, f"set timeout_ms={timeout_ms} of transaction '{name}'")
                txn._state = "failed"
                txn._remove()
                raise err from None
        return txn

    def get_state(self, agent_id: str, key: str, namespace: Optional[str] = None) -> StateResult:
        """The key's latest committed value, version and commit_ts. A missing key gives
        exists=False and value None (with the delete's version and commit_ts when it was
        deleted, else 0 and 0), as in the SDK."""
        ns = namespace or self._namespace
        _check_name("namespace", ns)
        _check_name("agent_id", agent_id)
        _check_key(key)
        path = self._path(ns, agent_id, key)
        for _ in range(_READ_TRIES):
            try:
                version = int(os.getxattr(path, XATTR_VERSION))
                commit_ts = int(os.getxattr(path, XATTR_COMMIT_TS))
                raw = _read_key(path)
                # Versions only grow: the same version after the read means no commit of
                # this key came between the xattrs and the bytes.
                if int(os.getxattr(path, XATTR_VERSION)) == version:
                    return StateResult(decode_value(raw), version, commit_ts, True, key)
                continue
            except OSError as e:
                if e.errno not in _MISSING:
                    raise self._error(e, "read key", f"{ns}/{agent_id}/{key}") from None
            history = self._history(ns, agent_id, key)
            if not history:
                return StateResult(None, 0, 0, False, key)
            last = history[-1]
            if last.get("op") == "delete":
                return StateResult(None, last["version"], last["commit_ts"], False, key)
            # written again since the read failed: read it again
        raise StatehouseError(
            f"cannot read key '{ns}/{agent_id}/{key}': it changed on each of {_READ_TRIES} reads",
            E.EAGAIN,
        )

    def get_state_at_version(
        self, agent_id: str, key: str, version: int, namespace: Optional[str] = None
    ) -> StateResult:
        """The key as its version `version` left it (.history). A version that was a
        delete gives exists=False with its version and commit_ts; an unknown version
        gives exists=False, version 0, commit_ts 0."""
        ns = namespace or self._namespace
        _check_name("namespace", ns)
        _check_name("agent_id", agent_id)
        _check_key(key)
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be an int, not {type(version).__name__}")
        entry = next(
            (x for x in self._history(ns, agent_id, key) if x.get("version") == version), None
        )
        if entry is None:
            return StateResult(None, 0, 0, False, key)
        if entry.get("op") == "delete":
            return StateResult(None, version, entry["commit_ts"], False, key)
        raw = self._history_value(ns, agent_id, key, version)
        return StateResult(decode_value(raw), version, entry["commit_ts"], True, key)

    def list_keys(self, agent_id: str, namespace: Optional[str] = None) -> List[str]:
        """Every live key of the agent, sorted; keys with "/" included."""
        ns = namespace or self._namespace
        _check_name("namespace", ns)
        _check_name("agent_id", agent_id)
        return sorted(self._walk(ns, agent_id, ""))

    def scan_prefix(
        self, agent_id: str, prefix: str, namespace: Optional[str] = None
    ) -> List[StateResult]:
        """The live keys that begin with prefix (as strings: "conf" matches "config/a"),
        sorted by key, each a StateResult whose .key says which. Each key is read
        consistently on its own; the list is not one snapshot (use a transaction's view
        for that)."""
        ns = namespace or self._namespace
        _check_name("namespace", ns)
        _check_name("agent_id", agent_id)
        # Only the directory the prefix's last "/" names can hold matching keys.
        top = prefix.rpartition("/")[0]
        if top and any(p in ("", ".", "..") for p in top.split("/")):
            return []
        results = []
        for key in sorted(k for k in self._walk(ns, agent_id, top) if k.startswith(prefix)):
            state = self.get_state(agent_id, key, ns)
            if state.exists:
                results.append(state)
        return results

    def replay(
        self,
        agent_id: str,
        start_ts: Optional[int] = None,
        end_ts: Optional[int] = None,
        namespace: Optional[str] = None,
    ) -> Iterator[ReplayEvent]:
        """The agent's commits with start_ts <= commit_ts <= end_ts (both inclusive, both
        optional), oldest first, each with only that agent's operations. A delete is an
        Operation with value None and deleted True. Values decode as in get_state."""
        ns = namespace or self._namespace
        _check_name("namespace", ns)
        _check_name("agent_id", agent_id)
        # .events/.ns/<ns> reaches every namespace, also one named "since" or "all.jsonl"
        if start_ts is None or start_ts <= 0:
            path = self._path(".events", ".ns", ns, agent_id + ".jsonl")
        else:
            path = self._path(
                ".events", "since", str(int(start_ts)), ".ns", ns, agent_id + ".jsonl"
            )
        # Opened here, not in the generator, so a dead mount raises at the call.
        try:
            stream = open(path, "rb")
        except OSError as e:
            raise self._error(e, "replay the events of", f"{ns}/{agent_id}") from None
        return self._events(stream, ns, agent_id, end_ts)

    def replay_events(
        self,
        agent_id: str,
        start_ts: Optional[int] = None,
        end_ts: Optional[int] = None,
        namespace: Optional[str] = None,
    ) -> Iterator[ReplayEvent]:
        """replay() under the SDK's other name."""
        return self.replay(agent_id, start_ts, end_ts, namespace)

    def replay_pretty(
        self,
        agent_id: str,
        start_ts: Optional[int] = None,
        end_ts: Optional[int] = None,
        namespace: Optional[str] = None,
        verbose: bool = False,
    ) -> Iterator[str]:
        """replay() as one line per operation: "HH:MM:SSZ  agent=A  WRITE  key=K  v=N
        summary" ("DEL" for a delete, "ns=NS" after the time outside "default"); verbose
        adds txn= and commit_ts= and shows the whole value as payload=."""
        events = self.replay(agent_id, start_ts, end_ts, namespace)
        return (format_operation(ev, op, verbose) for ev in events for op in ev.operations)

    def __repr__(self) -> str:
        return f"<Statehouse {self._mnt!r} namespace={self._namespace!r}>"

    def _path(self, *parts: str) -> str:
        if self._closed:
            raise ConnectionError(f"cannot use the client of '{self._mnt}': it is closed")
        return os.path.join(self._mnt, *parts)

    def _error(
        self, e: OSError, action: str, obj: Optional[str], cls: type = StatehouseError
    ) -> StatehouseError:
        what = f"{action} '{obj}'" if obj is not None else action
        if e.errno in _DEAD:
            return ConnectionError(
                f"cannot {what}: statehouse mount '{self._mnt}' is gone ({e.strerror})", e.errno
            )
        if cls is StatehouseError and e.errno == E.ENOENT:
            cls = NotFoundError
        return cls(f"cannot {what}: {e.strerror}", e.errno)

    def _history(self, ns: str, agent_id: str, key: str) -> List[Dict[str, Any]]:
        path = self._path(".history", ns, agent_id, encode_key(key), "index.jsonl")
        try:
            raw = _read_file(path)
        except OSError as e:
            if e.errno in _MISSING:
                return []
            raise self._error(e, "read the history of key", f"{ns}/{agent_id}/{key}") from None
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    def _history_value(self, ns: str, agent_id: str, key: str, version: int) -> bytes:
        try:
            return _read_file(self._path(".history", ns, agent_id, encode_key(key), str(version)))
        except OSError as e:
            raise self._error(
                e, f"read version {version} of key", f"{ns}/{agent_id}/{key}"
            ) from None

    def _walk(self, ns: str, agent_id: str, below: str) -> Iterator[str]:
        top = self._path(ns, agent_id)
        pending = [below]
        while pending:
            rel = pending.pop()
            try:
                with os.scandir(os.path.join(top, rel) if rel else top) as it:
                    entries = list(it)
            except OSError as e:
                if e.errno in _MISSING:
                    continue  # its last key went away meanwhile, or it never held one
                raise self._error(e, "list the keys below", f"{ns}/{agent_id}/{rel}") from None
            for entry in entries:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                else:
                    yield name

    def _events(
        self, stream, ns: str, agent_id: str, end_ts: Optional[int]
    ) -> Iterator[ReplayEvent]:
        with stream:
            while True:
                try:
                    line = stream.readline()
                except OSError as e:
                    raise self._error(e, "replay the events of", f"{ns}/{agent_id}") from None
                if not line:
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                if end_ts is not None and event["commit_ts"] > end_ts:
                    return
                yield ReplayEvent(
                    txn_id=json_name(event, "txn") or "",
                    commit_ts=event["commit_ts"],
                    # Only key operations: owner changes ("attr") and directories made
                    # or removed ("mkdir", "rmdir") have no key version.
                    operations=[
                        self._operation(ns, agent_id, op)
                        for op in event.get("ops", [])
                        if op.get("op") in ("put", "delete")
                    ],
                    namespace=ns,
                    agent_id=agent_id,
                    time=event.get("time"),
                )

    def _operation(self, ns: str, agent_id: str, op: Dict[str, Any]) -> Operation:
        key = json_name(op, "key")
        if op.get("op") == "delete":
            return Operation(key, None, op["version"], deleted=True)
        if "value_base64" in op:
            return Operation(key, base64.b64decode(op["value_base64"]), op["version"])
        value = op.get("value")
        if isinstance(value, str):
            # .events shows bytes it does not take for JSON as a JSON string: text, but
            # also JSON it cannot hold (an integer beyond 64 bits). The version's own bytes
            # decide, by the rule get_state uses.
            value = decode_value(self._history_value(ns, agent_id, key, op["version"]))
        return Operation(key, value, op["version"])
