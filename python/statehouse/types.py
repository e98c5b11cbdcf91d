# SPDX-License-Identifier: MIT
"""Values the statehouse module returns: StateResult, Operation and ReplayEvent.

Field names and order follow the Statehouse Python SDK 0.1; the fields it lacks (key,
deleted, time) come last with defaults, so the SDK's positional constructors still work.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional


@dataclass
class StateResult:
    """A key's value with its version and the commit_ts of the commit that wrote it.

    A key that does not exist reads value=None, exists=False, and version and commit_ts
    0, or those of the delete when the key was deleted (what the SDK returns). key is
    the key read (set by every read; scan_prefix needs it).
    """

    value: Any
    version: int
    commit_ts: int
    exists: bool
    key: Optional[str] = None


@dataclass
class Operation:
    """One write or delete of a replayed commit. A delete has value None and deleted True
    (deleted tells it apart from a stored JSON null)."""

    key: str
    value: Any
    version: int
    deleted: bool = False


@dataclass
class ReplayEvent:
    """One commit as seen by one agent: its operations on that agent's keys, in order.
    txn_id is the transaction's name ("auto" for a direct file write); time is the
    commit's RFC 3339 UTC time."""

    txn_id: str
    commit_ts: int
    operations: List[Operation]
    namespace: str = "default"
    agent_id: str = ""
    time: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """The event as plain dicts and lists (for JSON output)."""
        return {
            "txn_id": self.txn_id,
            "commit_ts": self.commit_ts,
            "namespace": self.namespace,
            "agent_id": self.agent_id,
            "time": self.time,
            "operations": [
                {"key": op.key, "value": op.value, "version": op.version, "deleted": op.deleted}
                for op in self.operations
            ],
        }


__all__ = ["StateResult", "Operation", "ReplayEvent"]
