# SPDX-License-Identifier: MIT
"""Transactions through a real mount: staging, commit, abort, the context manager,
conflicts, expiry and the errors of each step."""

import errno
import json
import os
import time

import pytest

from statehouse import Statehouse, StateResult, TransactionError


def open_txns(mnt):
    return set(os.listdir(mnt / ".tx"))


def xattr(path, name):
    return int(os.getxattr(path, f"user.statehouse.{name}"))


def test_a_commit_makes_every_write_visible_at_one_commit_ts_and_removes_the_transaction(sh, mnt):
    tx = sh.begin_transaction()
    assert tx.txn_id in open_txns(mnt)
    tx.write("ag", "a", {"n": 1})
    tx.write("ag", "b", {"n": 2})
    assert not sh.get_state("ag", "a").exists
    ts = tx.commit()
    assert isinstance(ts, int) and ts > 0
    for key, n in (("a", 1), ("b", 2)):
        assert sh.get_state("ag", key) == StateResult({"n": n}, 1, ts, True, key)
        assert xattr(mnt / "default" / "ag" / key, "commit_ts") == ts
    assert tx.txn_id not in open_txns(mnt)
    assert json.loads((mnt / "default" / "ag" / "a").read_text()) == {"n": 1}


def test_writes_are_staged_in_the_daemon_at_once_not_at_commit(sh, mnt):
    tx = sh.begin_transaction()
    tx.write("ag", "k", {"staged": True})
    staged = mnt / ".tx" / tx.txn_id / "default" / "ag" / "k"
    assert json.loads(staged.read_text()) == {"staged": True}
    assert json.loads((mnt / ".tx" / tx.txn_id / ".status").read_text())["ops"] == 1
    tx.abort()


def test_the_context_manager_commits_when_the_block_ends(sh, mnt):
    with sh.begin_transaction() as tx:
        tx.write("ag", "k", {"v": 1})
    assert sh.get_state("ag", "k").value == {"v": 1}
    assert tx.txn_id not in open_txns(mnt)
    with pytest.raises(TransactionError, match="already committed"):
        tx.commit()


def test_the_context_manager_aborts_when_the_block_raises_and_lets_the_exception_through(sh, mnt):
    with pytest.raises(RuntimeError, match="boom"):
        with sh.begin_transaction() as tx:
            tx.write("ag", "k", {"v": 1})
            raise RuntimeError("boom")
    assert not sh.get_state("ag", "k").exists
    assert tx.txn_id not in open_txns(mnt)
    assert list(sh.replay("ag")) == []


def test_a_second_commit_raises_transaction_error_and_so_do_writes_and_abort_after_a_commit(sh):
    tx = sh.begin_transaction()
    tx.write("ag", "k", {})
    ts = tx.commit()
    with pytest.raises(TransactionError, match="already committed") as second:
        tx.commit()
    assert second.value.reason == "finished"
    with pytest.raises(TransactionError, match="already committed"):
        tx.write("ag", "k2", {})
    with pytest.raises(TransactionError, match="already committed"):
        tx.abort()
    assert sh.get_state("ag", "k").commit_ts == ts
    assert not sh.get_state("ag", "k2").exists


def test_abort_discards_the_staged_operations_is_idempotent_and_consumes_no_commit_ts(sh, mnt):
    before = sh.begin_transaction()
    before.write("ag", "probe", {})
    ts = before.commit()
    tx = sh.begin_transaction()
    tx.write("ag", "k", {"v": 1})
    tx.abort()
    tx.abort()
    assert tx.txn_id not in open_txns(mnt)
    assert not sh.get_state("ag", "k").exists
    with pytest.raises(TransactionError, match="already aborted"):
        tx.commit()
    after = sh.begin_transaction()
    after.write("ag", "probe", {})
    assert after.commit() == ts + 1


def test_a_delete_removes_the_key_at_commit_with_a_new_version(sh):
    with sh.begin_transaction() as tx:
        tx.write("ag", "k", {"v": 1})
        tx.write("ag", "keep", {"v": 1})
    tx = sh.begin_transaction()
    tx.delete("ag", "k")
    assert sh.get_state("ag", "k").exists
    ts = tx.commit()
    assert sh.get_state("ag", "k") == StateResult(
        value=None, version=2, commit_ts=ts, exists=False, key="k"
    )
    assert sh.list_keys("ag") == ["keep"]


def test_deleting_a_key_the_transaction_does_not_see_stages_nothing_and_the_block_commits(sh, mnt):
    # As the SDK: its daemon staged a delete without looking for the key, so a `with` block
    # that deletes a key that is not there (never written, deleted already, a prefix of
    # other keys, below another key) commits the rest of what it staged.
    with sh.begin_transaction() as tx:
        tx.write("ag", "gone", {"v": 0})
        tx.write("ag", "plan/step/1", {"s": 1})
        tx.write("ag", "file", {"f": 1})
    with sh.begin_transaction() as tx:
        tx.delete("ag", "gone")
    head = sh.get_state("ag", "gone")
    with sh.begin_transaction() as tx:
        for key in ("never", "gone", "plan", "plan/step", "file/below"):
            assert tx.delete("ag", key) is None
        tx.write("ag", "k", {"v": 1})
        tx.delete("ag", "never")
        staged = json.loads((mnt / ".tx" / tx.txn_id / ".status").read_text())
    assert staged["ops"] == 1
    assert sh.get_state("ag", "k").value == {"v": 1}
    # nothing of the deletes was recorded: no new version, no operation in the events
    assert sh.get_state("ag", "gone") == head
    assert not sh.get_state("ag", "never").exists
    assert sh.get_state("ag", "never").version == 0
    assert sh.list_keys("ag") == ["file", "k", "plan/step/1"]
    last = list(sh.replay("ag"))[-1]
    assert [(op.key, op.deleted) for op in last.operations] == [("k", False)]


def test_a_delete_in_an_expired_transaction_raises_expired_even_for_a_missing_key(sh):
    tx = sh.begin_transaction(timeout_ms=100)
    time.sleep(0.3)  # past the timeout: expiry is certain, nothing here measures speed
    for key in ("never", "k"):
        with pytest.raises(TransactionError) as expired:
            tx.delete("ag", key)
        assert expired.value.reason == "expired"
        assert expired.value.errno == errno.ETIMEDOUT


def test_a_delete_in_a_transaction_removed_by_hand_raises_transaction_error(sh, mnt):
    tx = sh.begin_transaction()
    os.rmdir(mnt / ".tx" / tx.txn_id)
    with pytest.raises(TransactionError, match="no transaction") as gone:
        tx.delete("ag", "never")
    assert gone.value.errno == errno.ENOENT


def test_keys_with_slashes_stage_below_subdirectories_and_commit_and_delete(sh, mnt):
    with sh.begin_transaction() as tx:
        tx.write("ag", "plan/step/1", {"s": 1})
        tx.write("ag", "plan/step/2", {"s": 2})
        tx.write("ag", "plan/goal", {"g": True})
    assert (mnt / "default" / "ag" / "plan" / "step" / "1").is_file()
    assert sh.get_state("ag", "plan/step/2").value == {"s": 2}
    assert sh.list_keys("ag") == ["plan/goal", "plan/step/1", "plan/step/2"]
    with sh.begin_transaction() as tx:
        tx.delete("ag", "plan/step/1")
    assert sh.list_keys("ag") == ["plan/goal", "plan/step/2"]
    assert not sh.get_state("ag", "plan/step").exists


def test_when_two_transactions_write_one_key_the_second_commit_raises_a_conflict(sh, mnt):
    t1 = sh.begin_transaction()
    t2 = sh.begin_transaction()
    t1.write("ag", "k", {"by": 1})
    t2.write("ag", "k", {"by": 2})
    t2.write("ag", "other", {"by": 2})
    ts = t1.commit()
    with pytest.raises(TransactionError, match="conflict") as conflict:
        t2.commit()
    err = conflict.value
    assert (err.errno, err.reason, err.key) == (errno.ESTALE, "conflict", "default/ag/k")
    assert "'default/ag/k'" in str(err) and t2.txn_id in str(err)
    assert sh.get_state("ag", "k").value == {"by": 1}
    assert sh.get_state("ag", "k").commit_ts == ts
    assert not sh.get_state("ag", "other").exists
    assert t2.txn_id not in open_txns(mnt)
    with pytest.raises(TransactionError, match="commit already failed"):
        t2.commit()
    t2.abort()


def test_an_expired_transaction_raises_transaction_error_saying_it_expired(sh, mnt):
    tx = sh.begin_transaction(timeout_ms=100)
    assert json.loads((mnt / ".tx" / tx.txn_id / ".status").read_text())["timeout_ms"] == 100
    tx.write("ag", "k", {"v": 1})
    time.sleep(0.3)  # past the timeout: expiry is certain, nothing here measures speed
    with pytest.raises(TransactionError, match="expired") as expired:
        tx.commit()
    assert (expired.value.errno, expired.value.reason) == (errno.ETIMEDOUT, "expired")
    assert "100 ms" in str(expired.value)
    assert not sh.get_state("ag", "k").exists
    assert tx.txn_id not in open_txns(mnt)


def test_a_write_into_an_expired_transaction_raises_transaction_error_saying_it_expired(sh):
    tx = sh.begin_transaction(timeout_ms=100)
    time.sleep(0.3)
    with pytest.raises(TransactionError, match="expired") as expired:
        tx.write("ag", "k", {"v": 1})
    assert expired.value.errno == errno.ETIMEDOUT
    tx.abort()


def test_a_timeout_ms_the_daemon_refuses_raises_transaction_error_and_leaves_no_transaction(
    sh, mnt
):
    with pytest.raises(TransactionError, match="timeout_ms=0") as bad:
        sh.begin_transaction(timeout_ms=0)
    assert bad.value.errno == errno.EINVAL
    assert open_txns(mnt) == set()
    with pytest.raises(TypeError):
        sh.begin_transaction(timeout_ms="100")


def test_begin_transaction_namespace_overrides_the_client_default(sh):
    with sh.begin_transaction(namespace="other") as tx:
        assert tx.namespace == "other"
        tx.write("ag", "k", {"v": 1})
    assert not sh.get_state("ag", "k").exists
    assert sh.get_state("ag", "k", namespace="other").value == {"v": 1}


def test_a_transaction_removed_behind_its_back_raises_transaction_error(sh, mnt):
    tx = sh.begin_transaction()
    tx.write("ag", "k", {"v": 1})
    os.rmdir(mnt / ".tx" / tx.txn_id)
    with pytest.raises(TransactionError, match="no transaction") as gone:
        tx.commit()
    assert gone.value.errno == errno.ENOENT
    assert not sh.get_state("ag", "k").exists


def test_beyond_max_open_txns_begin_transaction_raises_transaction_error_with_eagain(start_daemon):
    d = start_daemon("-o", "max_open_txns=1")
    sh = Statehouse(url=str(d.mnt))
    first = sh.begin_transaction()
    with pytest.raises(TransactionError) as full:
        sh.begin_transaction()
    assert full.value.errno == errno.EAGAIN
    first.abort()
    sh.begin_transaction().abort()


def test_a_value_over_max_value_bytes_raises_transaction_error_with_efbig_at_write(start_daemon):
    d = start_daemon("-o", "max_value_bytes=64")
    sh = Statehouse(url=str(d.mnt))
    with pytest.raises(TransactionError) as big:
        with sh.begin_transaction() as tx:
            tx.write("ag", "small", {"v": 1})
            tx.write("ag", "big", {"v": "x" * 100})
    assert big.value.errno == errno.EFBIG
    assert "'default/ag/big'" in str(big.value)
    assert not sh.get_state("ag", "small").exists
    assert not sh.get_state("ag", "big").exists


def test_write_takes_a_dict_of_json_values_only(sh):
    with sh.begin_transaction() as tx:
        for bad in ([1, 2], "text", 42, None):
            with pytest.raises(TypeError, match="dict"):
                tx.write("ag", "k", bad)
        with pytest.raises(ValueError):
            tx.write("ag", "k", {"nan": float("nan")})
        with pytest.raises(TypeError):
            tx.write("ag", "k", {"set": {1, 2}})
    assert not sh.get_state("ag", "k").exists


def test_write_with_expect_version_commits_only_at_that_version(sh, mnt):
    with sh.begin_transaction() as tx:
        tx.write("ag", "k", {"n": 1}, expect_version=0)
    with sh.begin_transaction() as tx:
        tx.write("ag", "k", {"n": 2}, expect_version=1)
        tx.write("ag", "dir/other", {"n": 1}, expect_version=0)
    assert sh.get_state("ag", "k").version == 2
    tx = sh.begin_transaction()
    tx.write("ag", "k", {"n": 3}, expect_version=1)
    tx.write("ag", "untouched", {"n": 3})
    with pytest.raises(TransactionError, match="precondition failed") as failed:
        tx.commit()
    assert failed.value.reason == "precondition"
    assert failed.value.errno == errno.ESTALE
    assert failed.value.key == "default/ag/k"
    assert sh.get_state("ag", "k").value == {"n": 2}
    assert not sh.get_state("ag", "untouched").exists
    assert tx.txn_id not in open_txns(mnt)
    tx = sh.begin_transaction()
    tx.write("ag", "dir/other", {"n": 2}, expect_version=0)
    with pytest.raises(TransactionError) as failed:
        tx.commit()
    assert failed.value.reason == "precondition"
    assert failed.value.key == "default/ag/dir/other"


def test_expect_version_must_be_a_version(sh):
    tx = sh.begin_transaction()
    for bad in (-1, True, "1", 1.0):
        with pytest.raises(ValueError, match="expect_version"):
            tx.write("ag", "k", {}, expect_version=bad)
    tx.abort()
