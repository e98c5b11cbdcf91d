# SPDX-License-Identifier: MIT
"""Replay through a real mount: replay / replay_events over .events, inclusive bounds,
exact values, and replay_pretty's lines."""

import json
import os
import re
import types

from test_reads import TRICKY, assert_same

from statehouse import Operation, ReplayEvent, Statehouse

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def commit(sh: Statehouse, *ops, namespace=None):
    """ops: (agent, key, value) writes, or (agent, key) deletes; returns the commit_ts."""
    tx = sh.begin_transaction(namespace=namespace)
    for op in ops:
        if len(op) == 3:
            tx.write(*op)
        else:
            tx.delete(*op)
    return tx.commit()


def test_replay_yields_the_agents_commits_oldest_first_with_only_its_operations(sh):
    tx = sh.begin_transaction()
    tx.write("ag", "a", {"n": 1})
    tx.write("other", "x", {"n": 2})
    t1 = tx.commit()
    t2 = commit(sh, ("ag", "b/c", {"n": 3}), ("ag", "a", {"n": 4}))
    commit(sh, ("other", "x", {"n": 5}))
    t4 = commit(sh, ("ag", "a"))
    events = list(sh.replay("ag"))
    assert [e.commit_ts for e in events] == [t1, t2, t4]
    assert all(
        isinstance(e, ReplayEvent) and (e.namespace, e.agent_id) == ("default", "ag")
        for e in events
    )
    assert events[0].txn_id == tx.txn_id
    assert all(RFC3339.match(e.time) for e in events)
    assert events[0].operations == [Operation("a", {"n": 1}, 1)]
    # statehouse(5) promises no order of the operations within one commit
    assert sorted(events[1].operations, key=lambda op: op.key) == [
        Operation("a", {"n": 4}, 2),
        Operation("b/c", {"n": 3}, 1),
    ]
    assert events[2].operations == [Operation("a", None, 3, deleted=True)]


def test_replay_bounds_are_inclusive_at_both_ends(sh):
    stamps = []
    for n in range(5):
        stamps.append(commit(sh, ("ag", "k", {"n": n})))
        commit(sh, ("other", "k", {"n": n}))

    def replayed(**bounds):
        return [e.commit_ts for e in sh.replay("ag", **bounds)]

    assert replayed() == stamps
    assert replayed(start_ts=stamps[1], end_ts=stamps[3]) == stamps[1:4]
    assert replayed(start_ts=stamps[1] + 1, end_ts=stamps[3] - 1) == [stamps[2]]
    assert replayed(start_ts=stamps[3]) == stamps[3:]
    assert replayed(end_ts=stamps[1]) == stamps[:2]
    assert replayed(start_ts=stamps[2], end_ts=stamps[2]) == [stamps[2]]
    assert replayed(start_ts=stamps[-1] + 100) == []
    assert replayed(end_ts=stamps[0] - 1) == []
    assert replayed(start_ts=0) == stamps


def test_replay_is_a_generator_and_replay_events_is_the_same_stream(sh):
    commit(sh, ("ag", "k", {"n": 1}))
    commit(sh, ("ag", "k", {"n": 2}))
    stream = sh.replay("ag")
    assert isinstance(stream, types.GeneratorType)
    assert list(sh.replay_events("ag")) == list(stream)
    assert len(list(sh.replay_events("ag", start_ts=2, end_ts=2))) == 1


def test_replayed_values_round_trip_exactly_even_past_what_events_json_can_hold(sh):
    # 2**64 in TRICKY is more than .events' 64-bit integers: the daemon shows such a
    # value as text, and the client reads the version's own bytes instead.
    commit(sh, ("ag", "tricky", TRICKY))
    small = {"i": 2**63 - 1, "f": [0.1, 1.0, -0.0], "s": "\u2603"}
    commit(sh, ("ag", "small", small))
    first, second = sh.replay("ag")
    assert_same(first.operations[0].value, TRICKY)
    assert_same(second.operations[0].value, small)


def test_replayed_values_other_programs_wrote_decode_as_get_state_does(sh, mnt):
    agent = mnt / "default" / "shell"
    for key, raw in (
        ("text", b"plain\n"),
        ("number", b"42"),
        ("string", b'"42"'),
        ("binary", b"\xff\x00"),
    ):
        (agent / key).write_bytes(raw)
    replayed = {op.key: op.value for e in sh.replay("shell") for op in e.operations}
    assert replayed == {"text": "plain\n", "number": 42, "string": "42", "binary": b"\xff\x00"}
    for key, value in replayed.items():
        assert sh.get_state("shell", key).value == value
    assert [e.txn_id for e in sh.replay("shell")] == ["auto"] * 4


def test_names_that_are_not_utf8_replay_as_the_same_bytes(sh, mnt):
    # Names are bytes: the daemon writes one that is not UTF-8 as "key_base64" (and
    # "txn_base64", ...); the module gives it back as os.fsdecode does, a str that names
    # the same bytes again.
    ns, agent, key = os.fsdecode(b"n\xfes"), os.fsdecode(b"a\xfdg"), os.fsdecode(b"k\xfc/x")
    tx = sh.begin_transaction(namespace=ns)
    tx.write(agent, key, {"v": 1})
    ts = tx.commit()
    # A transaction named by bytes that are not UTF-8, as any program may name one.
    tname = b"t\xff"
    tdir = os.path.join(os.fsencode(mnt), b".tx", tname)
    os.mkdir(tdir)
    with open(os.path.join(tdir, b"n\xfes/a\xfdg/k\xfc/x"), "wb") as f:
        f.write(b"\xff")
    os.rename(os.path.join(tdir, b".commit.pending"), os.path.join(tdir, b".commit"))
    first, second = sh.replay(agent, namespace=ns)
    assert first.commit_ts == ts
    assert first.operations == [Operation(key, {"v": 1}, 1)]
    assert os.fsencode(second.txn_id) == tname
    assert second.operations == [Operation(key, b"\xff", 2)]
    assert os.fsencode(second.operations[0].key) == b"k\xfc/x"
    assert sh.get_state(agent, second.operations[0].key, namespace=ns).value == b"\xff"
    assert [op.key for e in sh.replay(agent, namespace=ns) for op in e.operations] == [key, key]


def test_to_dict_gives_the_event_as_plain_json_data(sh):
    tx = sh.begin_transaction()
    tx.write("ag", "k", {"v": [1, {"w": 2}]})
    ts = tx.commit()
    commit(sh, ("ag", "k"))
    first, second = (e.to_dict() for e in sh.replay("ag"))
    assert first == {
        "txn_id": tx.txn_id,
        "commit_ts": ts,
        "namespace": "default",
        "agent_id": "ag",
        "time": first["time"],
        "operations": [{"key": "k", "value": {"v": [1, {"w": 2}]}, "version": 1, "deleted": False}],
    }
    assert second["operations"] == [{"key": "k", "value": None, "version": 2, "deleted": True}]
    json.dumps(first)


def test_replay_pretty_gives_one_line_per_operation_with_time_agent_op_key_version_and_value(sh):
    # staged in key order, so that any order the daemon keeps within a commit gives this one
    commit(sh, ("ag", "note", {"text": "a\nb"}), ("ag", "plan/step", {"n": 1}))
    commit(sh, ("ag", "note"))
    commit(sh, ("ag", "long", {"text": "x" * 500}))
    events = list(sh.replay("ag"))
    clock = [e.time[11:19] + "Z" for e in events]
    lines = list(sh.replay_pretty("ag"))
    assert lines == [
        f'{clock[0]}  agent=ag  WRITE  key=note  v=1  {{"text":"a\\nb"}}',
        f'{clock[0]}  agent=ag  WRITE  key=plan/step  v=1  {{"n":1}}',
        f"{clock[1]}  agent=ag  DEL    key=note  v=2",
        f'{clock[2]}  agent=ag  WRITE  key=long  v=1  {{"text":"{"x" * 48}...',
    ]
    assert list(
        sh.replay_pretty("ag", start_ts=events[1].commit_ts, end_ts=events[1].commit_ts)
    ) == [lines[2]]


def test_replay_pretty_verbose_adds_the_transaction_commit_ts_and_whole_payload(sh):
    tx = sh.begin_transaction()
    tx.write("ag", "long", {"text": "x" * 500})
    ts = tx.commit()
    tx2 = sh.begin_transaction()
    tx2.delete("ag", "long")
    ts2 = tx2.commit()
    lines = list(sh.replay_pretty("ag", verbose=True))
    assert len(lines) == 2
    assert lines[0].endswith(
        f'  WRITE  key=long  v=1  txn={tx.txn_id}  commit_ts={ts}  payload={{"text":"{"x" * 500}"}}'
    )
    assert lines[1].endswith(f"  DEL    key=long  v=2  txn={tx2.txn_id}  commit_ts={ts2}")
    assert "\n" not in "".join(lines)


def test_replay_pretty_names_a_namespace_other_than_default(mnt):
    with Statehouse(url=str(mnt), namespace="team") as sh:
        commit(sh, ("ag", "k", {"v": 1}))
        (line,) = sh.replay_pretty("ag")
        assert re.fullmatch(
            r'\d\d:\d\d:\d\dZ  ns=team  agent=ag  WRITE  key=k  v=1  \{"v":1\}', line
        )
        assert list(sh.replay_pretty("ag", namespace="default")) == []
