# SPDX-License-Identifier: MIT
"""The Statehouse SDK's getting-started walk (a first transaction, reading it back,
several operations at once, errors, commit and abort by hand), on a statehoused mount.

    python3 python/examples/getting_started.py [MOUNTPOINT]

Without MOUNTPOINT: $STATEHOUSE_MOUNT, else the only statehouse mount. Its output is
checked by python/tests/test_getting_started.py.
"""

import sys

from statehouse import Statehouse, TransactionError


def main() -> int:
    client = Statehouse(url=sys.argv[1] if len(sys.argv) > 1 else None)

    # A first transaction: it commits when the block ends.
    with client.begin_transaction() as tx:
        tx.write(agent_id="my-agent", key="greeting", value={"message": "Hello, Statehouse!"})

    state = client.get_state(agent_id="my-agent", key="greeting")
    print("greeting:", state.value, "version", state.version, "exists", state.exists)

    # Several operations, one atomic commit. "temp-data" was never written: deleting it
    # stages nothing, as in the SDK, and the three writes commit all the same.
    with client.begin_transaction() as tx:
        tx.write(agent_id="my-agent", key="step1", value={"status": "started"})
        tx.write(agent_id="my-agent", key="step2", value={"status": "pending"})
        tx.write(agent_id="my-agent", key="config", value={"mode": "production"})
        tx.delete(agent_id="my-agent", key="temp-data")
    for key in ("step1", "step2", "config", "temp-data"):
        state = client.get_state(agent_id="my-agent", key=key)
        print(f"{key}:", state.value, "exists", state.exists)

    # A failed commit raises TransactionError; this one succeeds.
    try:
        with client.begin_transaction() as tx:
            tx.write(agent_id="my-agent", key="data", value={"x": 1})
    except TransactionError as e:
        print("transaction failed:", e)
        return 1

    # By hand: commit returns the commit_ts; abort discards what was staged.
    tx = client.begin_transaction()
    tx.write(agent_id="my-agent", key="data", value={"x": 2})
    commit_ts = tx.commit()
    tx = client.begin_transaction()
    tx.write(agent_id="my-agent", key="data", value={"x": 3})
    tx.abort()
    state = client.get_state(agent_id="my-agent", key="data")
    print("data:", state.value, "version", state.version, "at", state.commit_ts == commit_ts)

    for line in client.replay_pretty(agent_id="my-agent"):
        print(line[11:])  # without the time of day
    return 0


if __name__ == "__main__":
    sys.exit(main())
