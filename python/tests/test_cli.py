# SPDX-License-Identifier: MIT
"""python -m statehouse.cli, the SDK's command-line entry point, through a real mount:
each command and option of the SDK's CLI, the mount it finds, and its exit statuses."""

import json
import subprocess
import sys

import pytest

from conftest import module_env, run_private_ns
from statehouse import Statehouse


def cli(*args, mnt=None, env=None):
    """python -m statehouse.cli ARGS (with $STATEHOUSE_MOUNT=mnt when given)."""
    extra = {"STATEHOUSE_MOUNT": mnt} if mnt is not None else {}
    return subprocess.run(
        [sys.executable, "-m", "statehouse.cli", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else module_env(**extra),
    )


@pytest.fixture
def agent(sh):
    """agent-1 with three commits: plan v1, plan v2 with tool/search, then plan deleted."""
    with sh.begin_transaction() as tx:
        tx.write("agent-1", "plan", {"step": 1})
    with sh.begin_transaction() as tx:
        tx.write("agent-1", "plan", {"step": 2})
        tx.write("agent-1", "tool/search", {"query": "raft vs paxos", "results": 8})
    with sh.begin_transaction() as tx:
        tx.write("agent-1", "answer", {"text": "x" * 100})
        tx.delete("agent-1", "plan")
    return "agent-1"


def test_health_exits_0_on_a_live_mount_and_1_on_a_dead_one_as_the_tutorials_check_it(daemon):
    run = cli("health", mnt=daemon.mnt)
    assert (run.returncode, run.stdout) == (0, f"ok: statehouse mount '{daemon.mnt}' is healthy\n")
    # the SDK tutorials' run.sh and reset.sh: python3 -m statehouse.cli health > /dev/null 2>&1
    check = f"{sys.executable} -m statehouse.cli health > /dev/null 2>&1"
    env = module_env(STATEHOUSE_MOUNT=daemon.mnt)
    assert subprocess.run(["sh", "-c", check], env=env).returncode == 0
    daemon.kill9()
    assert subprocess.run(["sh", "-c", check], env=env).returncode == 1
    run = cli("health", mnt=daemon.mnt)
    assert run.returncode == 1
    assert run.stderr.startswith(f"python -m statehouse.cli: cannot reach statehouse mount '{daemon.mnt}'")


def test_with_no_address_the_only_statehouse_mount_is_used_and_with_none_health_exits_1(mnt):
    argv = [sys.executable, "-m", "statehouse.cli", "health"]
    run = run_private_ns([mnt], argv)
    assert (run.returncode, run.stdout) == (0, f"ok: statehouse mount '{mnt}' is healthy\n")
    run = run_private_ns([], argv)
    assert run.returncode == 1
    assert run.stderr == (
        "python -m statehouse.cli: no statehouse mount: mount one with 'statehousectl mount "
        "DATADIR MOUNTPOINT', or name one with url= or STATEHOUSE_MOUNT\n"
    )


def test_address_names_the_mount_and_a_network_address_is_refused_with_what_to_pass(mnt):
    for flag in ("--address", "-m", "--mount"):
        run = cli(flag, str(mnt), "health", env=module_env())
        assert run.returncode == 0, run.stderr
    run = cli("--address", "localhost:50051", "health", mnt=mnt)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == (
        "python -m statehouse.cli: --address 'localhost:50051' is a network address, but "
        "statehouse is reached through its mount: pass --address MOUNTPOINT (the MOUNTPOINT "
        "of 'statehoused DATADIR MOUNTPOINT'; 'statehousectl status' lists them), or set "
        "STATEHOUSE_MOUNT\n"
    )


def test_version_prints_the_sdk_cli_lines_scripts_read(sh, mnt):
    version, git_sha = sh.version()
    run = cli("version", mnt=mnt)
    assert run.returncode == 0
    assert run.stdout == f"Version: {version}\nGit SHA: {git_sha}\n"


def test_get_prints_the_value_or_a_summary_or_json_and_a_missing_key_exits_1(agent, mnt):
    run = cli("get", agent, "tool/search", mnt=mnt)
    assert run.stdout == (
        "key        tool/search\nversion    1\ncommit_ts  2\n\n"
        '{\n  "query": "raft vs paxos",\n  "results": 8\n}\n'
    )
    run = cli("get", agent, "answer", "--pretty", mnt=mnt)
    assert run.stdout.splitlines()[3] == 'value      {"text":"' + "x" * 100 + '"}'
    for flag in ("--json-output", "--json"):
        run = cli("get", agent, "tool/search", flag, mnt=mnt)
        assert json.loads(run.stdout) == {
            "key": "tool/search",
            "version": 1,
            "commit_ts": 2,
            "value": {"query": "raft vs paxos", "results": 8},
        }
    run = cli("get", agent, "plan", mnt=mnt)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == "python -m statehouse.cli: no key 'plan' for agent 'agent-1' in namespace 'default'\n"


def test_namespace_goes_after_the_command_as_in_the_sdk_cli(mnt):
    with Statehouse(url=str(mnt), namespace="prod") as sh:
        with sh.begin_transaction() as tx:
            tx.write("ag", "config", {"mode": "production"})
    run = cli("get", "ag", "config", "--namespace", "prod", "--json", mnt=mnt)
    assert json.loads(run.stdout)["value"] == {"mode": "production"}
    assert cli("get", "ag", "config", mnt=mnt).returncode == 1
    run = cli("keys", "ag", "--namespace", "prod", mnt=mnt)
    assert run.stdout == "keys of agent 'ag' in namespace 'prod':\n  - config\n\nTotal: 1\n"


def test_keys_lists_the_keys_with_a_total_and_prefix_filters_them(agent, mnt):
    run = cli("keys", agent, mnt=mnt)
    assert run.stdout.splitlines() == [
        "keys of agent 'agent-1' in namespace 'default':",
        "  - answer",
        "  - tool/search",
        "",
        "Total: 2",
    ]
    run = cli("keys", agent, "--prefix", "tool/", mnt=mnt)
    assert [line for line in run.stdout.splitlines() if line.startswith("  - ")] == ["  - tool/search"]
    assert run.stdout.endswith("Total: 1\n")


def test_replay_prints_pretty_lines_or_json_selected_by_start_and_end_ts_and_limit(agent, sh, mnt):
    run = cli("replay", agent, mnt=mnt)
    assert run.stdout.splitlines() == list(sh.replay_pretty(agent))
    assert [line[11:] for line in run.stdout.splitlines()[:2]] == [
        'agent=agent-1  WRITE  key=plan  v=1  {"step":1}',
        'agent=agent-1  WRITE  key=plan  v=2  {"step":2}',
    ]
    run = cli("replay", agent, "--verbose", "--limit", "1", mnt=mnt)
    assert run.stdout.splitlines() == list(sh.replay_pretty(agent, verbose=True))[:1]
    run = cli("replay", agent, "--json", "--start-ts", "2", "--end-ts", "2", mnt=mnt)
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["commit_ts"] for e in events] == [2]
    assert [(op["key"], op["version"]) for op in events[0]["operations"]] == [
        ("plan", 2),
        ("tool/search", 1),
    ]
    assert {"txn_id", "namespace", "agent_id"} <= set(events[0])
    run = cli("replay", agent, "--json", "--start-ts", "0", "--limit", "2", mnt=mnt)
    assert [json.loads(line)["commit_ts"] for line in run.stdout.splitlines()] == [1, 2]
    # the original's pipeline: the keys of every operation, a delete's value null
    ops = [op for line in cli("replay", agent, "--json", mnt=mnt).stdout.splitlines()
           for op in json.loads(line)["operations"]]
    assert [op["key"] for op in ops] == ["plan", "plan", "tool/search", "plan", "answer"]
    assert ops[3] == {"key": "plan", "value": None, "version": 3, "deleted": True}
    run = cli("replay", "nobody", mnt=mnt)
    assert (run.returncode, run.stdout) == (0, "")
    assert run.stderr == "no events for agent 'nobody' in namespace 'default'\n"


def test_tail_prints_the_last_operations_and_follow_points_to_statehousectl(agent, sh, mnt):
    lines = list(sh.replay_pretty(agent))
    run = cli("tail", agent, "-n", "2", mnt=mnt)
    assert run.stdout.splitlines() == lines[-2:]
    run = cli("tail", agent, "--lines", "0", mnt=mnt)
    assert run.stdout == ""
    assert cli("tail", agent, mnt=mnt).stdout.splitlines() == lines[-10:]
    run = cli("tail", agent, "-f", mnt=mnt)
    assert (run.returncode, run.stdout) == (1, "")
    assert "statehousectl tail -f agent-1" in run.stderr


def test_dump_writes_the_sdk_cli_json_or_text_to_stdout_or_a_file(agent, mnt, tmp_path):
    run = cli("dump", agent, mnt=mnt)
    assert json.loads(run.stdout) == {
        "answer": {"value": {"text": "x" * 100}, "version": 1, "commit_ts": 3},
        "tool/search": {"value": {"query": "raft vs paxos", "results": 8}, "version": 1, "commit_ts": 2},
    }
    run = cli("dump", agent, "--format", "text", mnt=mnt)
    assert run.stdout.splitlines() == [
        "# default/agent-1: 2 keys",
        'answer\tv1\t#3\t{"text": "' + "x" * 100 + '"}',
        'tool/search\tv1\t#2\t{"query": "raft vs paxos", "results": 8}',
    ]
    out = tmp_path / "agent-1.json"
    run = cli("dump", agent, "-o", str(out), mnt=mnt)
    assert run.stdout == f"wrote 2 keys of agent 'agent-1' to '{out}'\n"
    assert json.loads(out.read_text())["answer"]["version"] == 1
    run = cli("dump", agent, "--format", "yaml", mnt=mnt)
    assert run.returncode == 2
    assert "invalid choice: 'yaml'" in run.stderr


def test_inspect_shows_keys_commits_and_recent_operations(agent, sh, mnt):
    run = cli("inspect", agent, mnt=mnt)
    recent = ["  " + line for line in list(sh.replay_pretty(agent))[-5:]]
    assert run.stdout.splitlines() == [
        "agent      default/agent-1",
        "keys       2",
        "  - answer",
        "  - tool/search",
        "commits    3",
        "recent operations:",
        *recent,
    ]


def test_usage_errors_exit_2_and_errors_of_the_mount_exit_1(mnt):
    for args in ((), ("frobnicate",), ("get", "agent-1"), ("replay", "a", "--start-ts", "-1")):
        run = cli(*args, mnt=mnt)
        assert run.returncode == 2, args
        assert run.stdout == ""
    run = cli("get", "a/b", "k", mnt=mnt)
    assert run.returncode == 1
    assert run.stderr.startswith("python -m statehouse.cli: invalid agent_id 'a/b'")
    run = cli("--help", mnt=mnt)
    assert run.returncode == 0
    for command in ("health", "version", "get", "keys", "replay", "tail", "dump", "inspect"):
        assert command in run.stdout
