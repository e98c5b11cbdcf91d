# SPDX-License-Identifier: MIT
"""statehouse: the Statehouse Python SDK 0.1 API on a statehoused mount.

    from statehouse import Statehouse
    with Statehouse(url="/mnt/state") as sh:
        with sh.begin_transaction() as tx:
            tx.write(agent_id="agent-1", key="memory", value={"fact": "..."})
        print(sh.get_state(agent_id="agent-1", key="memory").value)

Standard library only; python/README.md lists what differs from the SDK.
"""

from .client import Statehouse, Transaction
from .exceptions import ConnectionError, NotFoundError, StatehouseError, TransactionError
from .types import Operation, ReplayEvent, StateResult

__version__ = "0.1.0"

__all__ = [
    "Statehouse",
    "Transaction",
    "StateResult",
    "ReplayEvent",
    "Operation",
    "StatehouseError",
    "TransactionError",
    "NotFoundError",
    "ConnectionError",
]
