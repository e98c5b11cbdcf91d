# SPDX-License-Identifier: MIT
"""pytest fixtures for python/statehouse: a real statehoused mount per test.

Like test/bats/helper.bash: the daemon runs in the foreground (-f) as our child on a
fresh data dir, the fixture waits for the mount to answer, and teardown unmounts it,
waits for the daemon to exit and fails the test on a sanitizer report in its log.
Environment: STATEHOUSED (default build/statehoused), STATEHOUSE_TEST_SINGLE=1 (-s),
STATEHOUSE_TEST_STRICT=1 (a skip fails).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "python"))

from statehouse import Statehouse  # noqa: E402 - needs the path above

DEADLINE_S = 20
# What test/bats/helper.bash's sh_check_log looks for.
SANITIZER_MARKS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "ThreadSanitizer",
    "runtime error",
    "BUG at",
)


def daemon_binary() -> Path:
    path = Path(os.environ.get("STATEHOUSED", "build/statehoused"))
    return path if path.is_absolute() else REPO_ROOT / path


def is_mounted(mnt: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        # Field 5 is the mount point, with space, tab, newline and backslash in octal.
        return any(line.split()[4].replace("\\040", " ") == str(mnt) for line in f)


class Daemon:
    """One statehoused on DATA mounted at MNT, its output in LOG."""

    def __init__(self, top: Path, env=None):
        self.data = top / "data"
        self.mnt = top / "mnt"
        self.log = top / "daemon.log"
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.mnt.mkdir(parents=True, exist_ok=True)

    def start(self, *args: str) -> None:
        cmd = [str(daemon_binary()), str(self.data), str(self.mnt), "-f"]
        if os.environ.get("STATEHOUSE_TEST_SINGLE") == "1":
            cmd.append("-s")
        cmd += args
        if not os.access(cmd[0], os.X_OK):
            pytest.fail(
                f"cannot run the daemon '{cmd[0]}': build it (ninja -C build) or set STATEHOUSED"
            )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if is_mounted(self.mnt) and os.path.exists(self.mnt / ".health"):
                return
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                pytest.fail(
                    f"daemon exited with {rc} before the mount was live:\n" + self.log_text()
                )
            time.sleep(0.02)
        pytest.fail(f"mount did not appear at {self.mnt} within {DEADLINE_S} s:\n{self.log_text()}")

    def kill9(self) -> None:
        """SIGKILL the daemon, its supervisor and the worker serving: the mount stays behind
        and answers ENOTCONN.  Returns once both are gone."""
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        self.proc.send_signal(signal.SIGKILL)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        deadline = time.monotonic() + DEADLINE_S
        while kids and time.monotonic() < deadline:
            kids = [k for k in kids if os.path.exists(f"/proc/{k}")]
            time.sleep(0.01)

    def stop(self) -> list:
        """Unmount and wait for the daemon to exit; returns what went wrong."""
        problems = []
        if is_mounted(self.mnt):
            for cmd in (["fusermount3", "-u"], ["umount"], ["umount", "-l"]):
                if subprocess.run(cmd + [str(self.mnt)], stderr=subprocess.DEVNULL).returncode == 0:
                    break
            else:
                problems.append(f"cannot unmount {self.mnt}")
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append(
                    f"daemon {self.proc.pid} did not exit within {DEADLINE_S} s of the unmount"
                )
        for line in self.log_text().splitlines():
            if any(mark in line for mark in SANITIZER_MARKS):
                problems.append(f"daemon log {self.log}: {line}")
        return problems

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def statehousectl_binary() -> Path:
    """The statehousectl of the daemon's build (build/mountctl/statehousectl)."""
    return daemon_binary().parent / "mountctl" / "statehousectl"


def module_env(**extra) -> dict:
    """The environment for a child Python that imports the module from the tree, with no
    $STATEHOUSE_MOUNT unless extra sets it."""
    env = {k: v for k, v in os.environ.items() if k != "STATEHOUSE_MOUNT"}
    env.update(PYTHONPATH=str(REPO_ROOT / "python"), PYTHONDONTWRITEBYTECODE="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# As test/bats/66-statehousectl-mounts.bats's in_private_ns: detach every statehouse mount
# but the kept ones, deepest first, in a mount namespace of its own.
_PRIVATE_NS = r"""
keep=$1
shift
awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "fuse.statehouse") print $5; break } }' \
	/proc/self/mountinfo | sort -r | while read -r m; do
	case " $keep " in *" $m "*) ;; *) umount -l "$m" ;; esac
done
exec "$@"
"""


def run_private_ns(keep, argv, env=None, **kw) -> subprocess.CompletedProcess:
    """Run argv in a private mount namespace whose only statehouse mounts are keep (a list
    of mountpoints): other tests' mounts on this machine are untouched outside it."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -m fails here: it needs root (the suite runs as root)")
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", _PRIVATE_NS, "private-ns",
         " ".join(str(k) for k in keep), *[str(a) for a in argv]],
        capture_output=True, text=True, env=env if env is not None else module_env(), **kw,
    )


@pytest.fixture
def start_daemon(tmp_path):
    """start_daemon(*daemon_args, env={...}): mount another daemon for this test."""
    daemons = []

    def start(*args, env=None):
        d = Daemon(tmp_path / f"d{len(daemons)}", env)
        daemons.append(d)
        d.start(*args)
        return d

    yield start
    problems = [p for d in daemons for p in d.stop()]
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()


@pytest.fixture
def mnt(daemon) -> Path:
    return daemon.mnt


@pytest.fixture
def sh(mnt):
    with Statehouse(url=str(mnt)) as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With STATEHOUSE_TEST_STRICT=1 (CI) a skip is a failure, as in test/bats."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and os.environ.get("STATEHOUSE_TEST_STRICT") == "1"
    ):
        report.outcome = "failed"
        report.longrepr = f"strict mode: would skip: {report.longrepr}"
