# SPDX-License-Identifier: MIT
"""Errors through a real mount: a missing, foreign or dead mount, a failing store, and
the errno every error keeps."""

import errno

import pytest

import statehouse.exceptions
import statehouse.types
from statehouse import ConnectionError, NotFoundError, Statehouse, StatehouseError, TransactionError


def test_the_exceptions_and_types_are_submodules_and_every_error_is_a_statehouse_error():
    assert statehouse.exceptions.ConnectionError is ConnectionError
    assert statehouse.types.StateResult is statehouse.StateResult
    assert statehouse.types.ReplayEvent is statehouse.ReplayEvent
    assert statehouse.types.Operation is statehouse.Operation
    for cls in (TransactionError, NotFoundError, ConnectionError):
        assert issubclass(cls, StatehouseError)


def test_a_directory_that_is_no_statehouse_mount_raises_connection_error(tmp_path):
    with pytest.raises(ConnectionError, match="not a statehouse mount") as plain:
        Statehouse(url=str(tmp_path))
    assert plain.value.errno == errno.ENOENT
    with pytest.raises(ConnectionError, match="not a statehouse mount"):
        Statehouse(url=str(tmp_path / "missing"))


@pytest.mark.parametrize(
    "url",
    ["localhost:50051", "http://localhost:50051", "grpc://10.0.0.5:50051", "[::1]:50051",
     "dns:///statehouse:50051", "unix:/run/statehouse.sock", "my-host.example:443"],
)
def test_a_network_address_for_url_raises_connection_error_saying_to_pass_the_mountpoint(
    url, monkeypatch
):
    with pytest.raises(ConnectionError) as address:
        Statehouse(url=url)
    assert str(address.value) == (
        f"cannot use url '{url}': it is a network address, but statehouse is reached "
        "through its mount, not over the network: pass url= the MOUNTPOINT of a statehoused "
        "mount (statehoused DATADIR MOUNTPOINT; 'statehousectl status' lists them), or set "
        "STATEHOUSE_MOUNT to it"
    )
    monkeypatch.setenv("STATEHOUSE_MOUNT", url)
    with pytest.raises(ConnectionError, match=r"^cannot use \$STATEHOUSE_MOUNT '.*network address"):
        Statehouse()


def test_a_directory_named_like_an_address_is_a_path_and_an_empty_url_is_refused(
    tmp_path, monkeypatch
):
    (tmp_path / "localhost:50051").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConnectionError, match="not a statehouse mount"):
        Statehouse(url="localhost:50051")
    with pytest.raises(ConnectionError, match="empty url"):
        Statehouse(url="")
    with pytest.raises(TypeError, match="url must be a path"):
        Statehouse(url=50051)


def test_a_statehouse_mount_that_is_not_one_names_statehouse_mount_when_it_came_from_there(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("STATEHOUSE_MOUNT", str(tmp_path))
    with pytest.raises(ConnectionError) as plain:
        Statehouse()
    assert str(plain.value).startswith(
        f"cannot use '{tmp_path}' ($STATEHOUSE_MOUNT): not a statehouse mount (no .health: "
    )


def test_every_call_on_a_dead_mount_raises_connection_error_with_enotconn(daemon):
    sh = Statehouse(url=str(daemon.mnt))
    with sh.begin_transaction() as tx:
        tx.write("ag", "k", {"v": 1})
    open_tx = sh.begin_transaction()
    daemon.kill9()
    calls = {
        "Statehouse": lambda: Statehouse(url=str(daemon.mnt)),
        "health": sh.health,
        "version": sh.version,
        "begin_transaction": sh.begin_transaction,
        "get_state": lambda: sh.get_state("ag", "k"),
        "get_state_at_version": lambda: sh.get_state_at_version("ag", "k", 1),
        "list_keys": lambda: sh.list_keys("ag"),
        "scan_prefix": lambda: sh.scan_prefix("ag", ""),
        "replay": lambda: sh.replay("ag"),
        "replay_pretty": lambda: sh.replay_pretty("ag"),
        "write": lambda: open_tx.write("ag", "k2", {"v": 2}),
        "delete": lambda: open_tx.delete("ag", "k"),
        "commit": open_tx.commit,
    }
    for name, call in calls.items():
        with pytest.raises(ConnectionError) as dead:
            call()
        assert dead.value.errno == errno.ENOTCONN, name
        assert str(daemon.mnt) in str(dead.value), name


def test_abort_on_a_dead_mount_raises_connection_error_and_a_failing_block_keeps_its_error(daemon):
    sh = Statehouse(url=str(daemon.mnt))
    tx = sh.begin_transaction()
    tx2 = sh.begin_transaction()
    daemon.kill9()
    with pytest.raises(ConnectionError) as dead:
        tx.abort()
    assert dead.value.errno == errno.ENOTCONN
    with pytest.raises(KeyError, match="mine"):
        with tx2:
            raise KeyError("mine")


def test_a_failing_store_makes_health_and_commits_fail_with_eio_while_reads_go_on(start_daemon):
    d = start_daemon(env={"STATEHOUSE_FAULT": "after=1,code=eio"})
    sh = Statehouse(url=str(d.mnt))
    with sh.begin_transaction() as tx:
        tx.write("ag", "k", {"v": 1})
    with pytest.raises(StatehouseError) as health:
        sh.health()
    assert not isinstance(health.value, ConnectionError)
    assert health.value.errno == errno.EIO
    tx = sh.begin_transaction()
    tx.write("ag", "k", {"v": 2})
    with pytest.raises(TransactionError) as commit:
        tx.commit()
    assert commit.value.errno == errno.EIO
    assert sh.get_state("ag", "k").value == {"v": 1}


def test_a_key_over_the_name_limits_raises_statehouse_error_with_enametoolong(sh):
    with pytest.raises(StatehouseError) as long:
        sh.get_state("ag", "k" * 256)
    assert long.value.errno == errno.ENAMETOOLONG
    assert not isinstance(long.value, (ConnectionError, NotFoundError))
    # the longest component is fine, but the key is over 1024 bytes
    deep = "/".join(["k" * 200] * 6)
    for key in ("k" * 256, deep):
        with sh.begin_transaction() as tx:
            with pytest.raises(TransactionError) as staged:
                tx.write("ag", key, {"v": 1})
        assert staged.value.errno == errno.ENAMETOOLONG
    assert not sh.get_state("ag", deep).exists
