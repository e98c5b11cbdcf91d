# SPDX-License-Identifier: MIT
"""The SDK's getting-started walk (python/examples/getting_started.py) through a real
mount: its `with` block that deletes a key never written commits its writes, as the
SDK's did, and nothing is recorded for that key."""

import subprocess
import sys
from pathlib import Path

from conftest import module_env
from statehouse import Statehouse

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "getting_started.py"


def test_the_getting_started_example_runs_and_its_delete_of_a_missing_key_commits_the_block(mnt):
    run = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=module_env(STATEHOUSE_MOUNT=mnt),
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "greeting: {'message': 'Hello, Statehouse!'} version 1 exists True",
        "step1: {'status': 'started'} exists True",
        "step2: {'status': 'pending'} exists True",
        "config: {'mode': 'production'} exists True",
        "temp-data: None exists False",
        "data: {'x': 2} version 2 at True",
        'agent=my-agent  WRITE  key=greeting  v=1  {"message":"Hello, Statehouse!"}',
        'agent=my-agent  WRITE  key=config  v=1  {"mode":"production"}',
        'agent=my-agent  WRITE  key=step1  v=1  {"status":"started"}',
        'agent=my-agent  WRITE  key=step2  v=1  {"status":"pending"}',
        'agent=my-agent  WRITE  key=data  v=1  {"x":1}',
        'agent=my-agent  WRITE  key=data  v=2  {"x":2}',
    ]
    with Statehouse(url=str(mnt)) as sh:
        # the three writes are one commit; temp-data has no version and no history
        events = list(sh.replay("my-agent"))
        assert [sorted(op.key for op in ev.operations) for ev in events[1:2]] == [
            ["config", "step1", "step2"]
        ]
        temp = sh.get_state("my-agent", "temp-data")
        assert (temp.exists, temp.version, temp.commit_ts) == (False, 0, 0)
        assert not (mnt / ".history" / "default" / "my-agent" / "temp-data").exists()
        assert sorted(sh.list_keys("my-agent")) == ["config", "data", "greeting", "step1", "step2"]
    # run again: greeting gets version 2, the missing key's delete is still no error
    again = subprocess.run(
        [sys.executable, str(EXAMPLE), str(mnt)], capture_output=True, text=True, env=module_env()
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "greeting: {'message': 'Hello, Statehouse!'} version 2 exists True"
