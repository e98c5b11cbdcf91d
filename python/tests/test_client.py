# SPDX-License-Identifier: MIT
"""The client itself through a real mount: health, version, the mount it finds, close.
Errors of a missing or dead mount are in test_errors.py."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import module_env, run_private_ns, statehousectl_binary
from statehouse import ConnectionError, Statehouse, StatehouseError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_health_reads_ok_from_a_live_mount(sh):
    assert sh.health() == "ok"


def test_version_returns_the_daemon_version_and_its_git_sha_or_none(sh, mnt):
    expected = json.loads((mnt / ".version").read_text())
    version, git_sha = sh.version()
    assert version == expected["version"]
    assert version
    assert git_sha == expected.get("git_sha")


def test_the_mount_defaults_to_statehouse_mount_from_the_environment(mnt, monkeypatch):
    monkeypatch.setenv("STATEHOUSE_MOUNT", str(mnt))
    with Statehouse() as client:
        assert client.url == str(mnt)
        assert client.namespace == "default"
        assert client.health() == "ok"


WHICH = "from statehouse import Statehouse; print(Statehouse().url)"


def test_without_url_or_statehouse_mount_the_only_statehouse_mount_is_used_as_statehousectl_does(
    mnt,
):
    (mnt / "default" / "ag" / "k").write_text("v")
    run = run_private_ns([mnt], [sys.executable, "-c", WHICH + "; print(Statehouse().health())"])
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(mnt), "ok"]
    # statehousectl, in the same situation, takes the same mount
    ctl = run_private_ns([mnt], [statehousectl_binary(), "get", "ag", "k"])
    assert (ctl.returncode, ctl.stdout) == (0, "v")


def test_with_no_statehouse_mount_the_client_says_how_to_get_one(daemon):
    run = run_private_ns([], [sys.executable, "-c", WHICH])
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        "statehouse.exceptions.ConnectionError: no statehouse mount: mount one with "
        "'statehousectl mount DATADIR MOUNTPOINT', or name one with url= or STATEHOUSE_MOUNT"
    )
    ctl = run_private_ns([], [statehousectl_binary(), "health"])
    assert ctl.returncode != 0
    assert "no statehouse mount" in ctl.stderr


def test_with_several_statehouse_mounts_the_client_lists_them_and_statehouse_mount_or_url_chooses(
    start_daemon,
):
    one, two = start_daemon(), start_daemon()
    run = run_private_ns([one.mnt, two.mnt], [sys.executable, "-c", WHICH])
    assert run.returncode == 1
    message = run.stderr[run.stderr.index("statehouse.exceptions.ConnectionError: ") :]
    assert message.splitlines() == [
        "statehouse.exceptions.ConnectionError: 2 statehouse mounts; choose one with url= or "
        "STATEHOUSE_MOUNT:",
        f"  {one.mnt} (data dir {one.data})",
        f"  {two.mnt} (data dir {two.data})",
    ]
    env = module_env(STATEHOUSE_MOUNT=two.mnt)
    chosen = run_private_ns([one.mnt, two.mnt], [sys.executable, "-c", WHICH], env=env)
    assert chosen.stdout == f"{two.mnt}\n"
    # url wins over $STATEHOUSE_MOUNT
    code = f"from statehouse import Statehouse; print(Statehouse(url={str(one.mnt)!r}).url)"
    chosen = run_private_ns([one.mnt, two.mnt], [sys.executable, "-c", code], env=env)
    assert chosen.stdout == f"{one.mnt}\n"


def test_a_relative_mount_path_keeps_working_after_a_chdir(mnt, monkeypatch, tmp_path):
    monkeypatch.chdir(mnt.parent)
    client = Statehouse(url=mnt.name)
    monkeypatch.chdir(tmp_path)
    assert client.url == str(mnt)
    assert client.health() == "ok"


def test_the_client_namespace_is_the_default_of_every_call(mnt):
    with Statehouse(url=str(mnt), namespace="team") as client:
        with client.begin_transaction() as tx:
            tx.write("ag", "k", {"ns": "team"})
        assert (mnt / "team" / "ag" / "k").exists()
        assert not (mnt / "default" / "ag" / "k").exists()
        assert client.get_state("ag", "k").value == {"ns": "team"}
        assert client.list_keys("ag") == ["k"]
        assert [e.namespace for e in client.replay("ag")] == ["team"]


def test_the_client_is_a_context_manager_and_calls_after_close_raise_connection_error(mnt):
    with Statehouse(url=str(mnt)) as client:
        assert client.health() == "ok"
    for call in (
        client.health,
        client.version,
        client.begin_transaction,
        lambda: client.get_state("ag", "k"),
    ):
        with pytest.raises(ConnectionError, match="closed"):
            call()
    client.close()
    assert issubclass(ConnectionError, StatehouseError)


def test_an_invalid_namespace_agent_or_key_raises_value_error_before_touching_the_mount(sh, mnt):
    for agent in ("", ".", "..", "a/b", "x\0y"):
        with pytest.raises(ValueError, match="agent_id"):
            sh.get_state(agent, "k")
    for key in ("", "/k", "k/", "a//b", "a/../../other/k", ".", "x\0y"):
        with pytest.raises(ValueError, match="key"):
            sh.get_state("ag", key)
        with sh.begin_transaction() as tx:
            with pytest.raises(ValueError, match="key"):
                tx.write("ag", key, {"v": 1})
    with pytest.raises(ValueError, match="namespace"):
        Statehouse(url=str(mnt), namespace="../x")
    assert sh.list_keys("other") == []


def test_the_readme_example_runs_as_written_against_a_real_mount(mnt):
    readme = (REPO_ROOT / "python" / "README.md").read_text()
    script = re.search(
        r"PYTHONPATH=python python3 - <<'EOF'\n(.*?)\n    EOF\n", readme, re.S
    ).group(1)
    script = textwrap.dedent(script).replace('"/home/me/state"', repr(str(mnt)))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "python"), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "{'fact': '...'} 1 1"
    assert sorted(line[11:] for line in lines[1:]) == [
        'agent=agent-1  WRITE  key=memory  v=1  {"fact":"..."}',
        'agent=agent-1  WRITE  key=plan/step/1  v=1  {"done":false}',
    ]
