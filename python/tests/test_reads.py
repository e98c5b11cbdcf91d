# SPDX-License-Identifier: MIT
"""Reads through a real mount: get_state, get_state_at_version, list_keys, scan_prefix,
the exact round trip of values and values that other programs wrote."""

import json
import os
import threading
import time

from statehouse import Statehouse, StateResult

# Everything JSON can carry that a round trip could bend: deep nesting, arrays of objects,
# integers past 64 bits, floats that print alike, -0.0, key order, escapes and unicode.
TRICKY = {
    "nested": {"a": {"b": {"c": [1, [2, [3, {"d": []}]]]}}},
    "objects": [{"id": 1, "tags": ["x", "y"]}, {"id": 2, "tags": [], "meta": {}}, {}],
    "ints": [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, -(10**30)],
    "floats": [
        0.1,
        1.0,
        -0.0,
        2.5e-300,
        5e-324,
        1.7976931348623157e308,
        1e16,
        123456789.125,
        -3.75,
    ],
    "text": 'h\u00e9llo \u2603 \U0001F600 \u05e9\u05dc\u05d5\u05dd \u0000 \n\t"\\ /\u202e',
    "\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435",
    "": "",
    "null": None,
    "bools": [True, False],
    "order": {"z": 1, "a": 2, "m": 3},
    "json in a string": '{"a": 1}',
    "long": "x" * 5000,
}


def assert_same(got, want):
    """Equal, and equal as JSON text: 1 and 1.0, 0.0 and -0.0 or two key orders are not."""
    assert got == want
    assert json.dumps(got, ensure_ascii=False) == json.dumps(want, ensure_ascii=False)


def commit(sh, writes=(), deletes=(), agent="ag"):
    with sh.begin_transaction() as tx:
        for key, value in writes:
            tx.write(agent, key, value)
        for key in deletes:
            tx.delete(agent, key)


def test_a_tricky_value_round_trips_exactly(sh):
    tx = sh.begin_transaction()
    tx.write("ag", "tricky", TRICKY)
    ts = tx.commit()
    state = sh.get_state("ag", "tricky")
    assert_same(state.value, TRICKY)
    assert (state.version, state.commit_ts, state.exists) == (1, ts, True)
    assert isinstance(state.value["ints"][-2], int) and isinstance(state.value["floats"][1], float)


def test_a_stored_value_is_json_a_shell_can_read(sh, mnt):
    commit(sh, [("k", {"step": 3, "done": False})])
    assert json.loads((mnt / "default" / "ag" / "k").read_bytes()) == {"step": 3, "done": False}


def test_a_missing_key_reads_as_not_existing_with_version_and_commit_ts_zero(sh):
    assert sh.get_state("ag", "nope") == StateResult(
        value=None, version=0, commit_ts=0, exists=False, key="nope"
    )


def test_a_deleted_key_reads_as_not_existing_with_the_version_and_commit_ts_of_its_delete(sh):
    commit(sh, [("k", {"v": 1})])
    tx = sh.begin_transaction()
    tx.delete("ag", "k")
    ts = tx.commit()
    assert sh.get_state("ag", "k") == StateResult(None, 2, ts, False, "k")


def test_a_prefix_of_keys_or_a_path_below_a_key_is_no_key(sh):
    commit(sh, [("dir/k", {"v": 1}), ("file", {"v": 2})])
    assert not sh.get_state("ag", "dir").exists
    assert not sh.get_state("ag", "file/below").exists


def test_get_state_reads_version_and_commit_ts_from_the_keys_xattrs(sh, mnt):
    for n in range(3):
        commit(sh, [("k", {"n": n})])
    path = mnt / "default" / "ag" / "k"
    state = sh.get_state("ag", "k")
    assert state.version == int(os.getxattr(path, "user.statehouse.version")) == 3
    assert state.commit_ts == int(os.getxattr(path, "user.statehouse.commit_ts"))
    assert state.value == {"n": 2}


def test_values_other_programs_wrote_read_as_json_text_or_bytes(sh, mnt):
    agent = mnt / "default" / "shell"
    (agent / "text").write_bytes(b"plain text\n")
    (agent / "number").write_bytes(b"42\n")
    (agent / "list").write_bytes(b'[1, {"a": 2}]')
    (agent / "nan").write_bytes(b"NaN")
    (agent / "binary").write_bytes(b"\xff\xfe\x00")
    assert sh.get_state("shell", "text").value == "plain text\n"
    assert sh.get_state("shell", "number").value == 42
    assert sh.get_state("shell", "list").value == [1, {"a": 2}]
    assert sh.get_state("shell", "nan").value == "NaN"
    assert sh.get_state("shell", "binary").value == b"\xff\xfe\x00"


def test_get_state_at_version_reads_every_past_version_and_its_commit_ts(sh):
    stamps = []
    for n in range(3):
        tx = sh.begin_transaction()
        tx.write("ag", "k", {"n": n, "f": n + 0.5})
        stamps.append(tx.commit())
    tx = sh.begin_transaction()
    tx.delete("ag", "k")
    deleted_at = tx.commit()
    tx = sh.begin_transaction()
    tx.write("ag", "k", TRICKY)
    last = tx.commit()
    for n, ts in enumerate(stamps):
        assert sh.get_state_at_version("ag", "k", n + 1) == StateResult(
            {"n": n, "f": n + 0.5}, n + 1, ts, True, "k"
        )
    assert sh.get_state_at_version("ag", "k", 4) == StateResult(None, 4, deleted_at, False, "k")
    fifth = sh.get_state_at_version("ag", "k", 5)
    assert_same(fifth.value, TRICKY)
    assert (fifth.version, fifth.commit_ts, fifth.exists) == (5, last, True)
    for unknown in (0, 6, -1):
        assert sh.get_state_at_version("ag", "k", unknown) == StateResult(None, 0, 0, False, "k")
    assert sh.get_state_at_version("ag", "never", 1) == StateResult(None, 0, 0, False, "never")


def test_get_state_at_version_finds_keys_with_slash_and_percent(sh):
    commit(sh, [("100%/done", {"v": 1}), ("100%2Fdone", {"v": 2})])
    commit(sh, [("100%/done", {"v": 3})])
    assert sh.get_state_at_version("ag", "100%/done", 1).value == {"v": 1}
    assert sh.get_state_at_version("ag", "100%/done", 2).value == {"v": 3}
    assert sh.get_state_at_version("ag", "100%2Fdone", 1).value == {"v": 2}
    assert sh.get_state("ag", "100%/done").value == {"v": 3}


def test_list_keys_lists_every_live_key_of_the_agent_sorted_with_slashes(sh):
    commit(sh, [("b", {}), ("a/x/1", {}), ("a/y", {}), ("gone", {}), ("c", {})])
    commit(sh, deletes=["gone"])
    commit(sh, [("mine", {})], agent="other")
    assert sh.list_keys("ag") == ["a/x/1", "a/y", "b", "c"]
    assert sh.list_keys("other") == ["mine"]
    assert sh.list_keys("nobody") == []
    assert sh.list_keys("ag", namespace="elsewhere") == []


def test_scan_prefix_returns_the_matching_keys_values_sorted_each_with_its_key(sh):
    commit(
        sh,
        [
            ("config/b", {"i": 2}),
            ("config/a", {"i": 1}),
            ("config/sub/c", {"i": 3}),
            ("configx", {"i": 4}),
        ],
    )
    commit(sh, [("other", {"i": 5}), ("config/gone", {"i": 6})])
    commit(sh, deletes=["config/gone"])
    results = sh.scan_prefix("ag", "config/")
    assert [r.key for r in results] == ["config/a", "config/b", "config/sub/c"]
    assert [r.value for r in results] == [{"i": 1}, {"i": 2}, {"i": 3}]
    for r in results:
        assert r == sh.get_state("ag", r.key)
    assert [r.key for r in sh.scan_prefix("ag", "conf")] == [
        "config/a",
        "config/b",
        "config/sub/c",
        "configx",
    ]
    assert [r.key for r in sh.scan_prefix("ag", "config/s")] == ["config/sub/c"]
    assert [r.key for r in sh.scan_prefix("ag", "")] == sh.list_keys("ag")
    assert sh.scan_prefix("ag", "zzz") == []
    assert sh.scan_prefix("ag", "../") == []


def test_a_read_racing_commits_of_the_same_key_returns_a_value_with_its_own_version(sh, mnt):
    # The writer commits {"n": v} as version v; a read pairing a value with another
    # commit's version would show n != version.
    stop = threading.Event()

    def writer():
        v = 1
        with Statehouse(url=str(mnt)) as own:
            while not stop.is_set():
                with own.begin_transaction() as tx:
                    tx.write("ag", "k", {"n": v})
                v += 1

    commit(sh, [("k", {"n": 0})])
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = set()
        reads = 0
        deadline = time.monotonic() + 20
        # Until the reads met 30 versions: a deadline for the writer, no measure of speed.
        while len(seen) < 30 and time.monotonic() < deadline:
            state = sh.get_state("ag", "k")
            assert state.value["n"] == state.version - 1, state
            seen.add(state.version)
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert len(seen) == 30, f"{reads} reads saw only versions {sorted(seen)}"


def test_a_key_of_1024_bytes_with_slashes_has_a_history_like_any_other(sh):
    # Its .history name ("/" as "%2F") is far over 255 bytes: it goes on through segment
    # directories (encode_key), so every version stays readable, after the delete too.
    key = "/".join(["k" * 200, "%" * 100, "\u00e9" * 120, "x" * 240, "w" * 240])
    assert len(key.encode()) == 1024
    tx = sh.begin_transaction()
    tx.write("ag", key, {"v": 1})
    ts = tx.commit()
    assert sh.get_state("ag", key) == StateResult({"v": 1}, 1, ts, True, key)
    assert sh.list_keys("ag") == [key]
    with sh.begin_transaction() as tx:
        tx.delete("ag", key)
    deleted = sh.get_state("ag", key)
    assert (deleted.exists, deleted.version) == (False, 2)
    assert sh.get_state_at_version("ag", key, 1) == StateResult({"v": 1}, 1, ts, True, key)
    ops = [op for event in sh.replay("ag") for op in event.operations]
    assert [(op.key, op.value, op.deleted) for op in ops] == [
        (key, {"v": 1}, False),
        (key, None, True),
    ]