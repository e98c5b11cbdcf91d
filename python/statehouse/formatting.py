# SPDX-License-Identifier: MIT
"""Human-readable lines for replayed operations (Statehouse.replay_pretty).

One line per operation, always: values go through json.dumps, which escapes newlines
and control characters, so a value can never break a line or forge another one.
"""

import json
from typing import Any

from .types import Operation, ReplayEvent

SUMMARY_CHARS = 60


def format_value_summary(value: Any, max_chars: int = SUMMARY_CHARS) -> str:
    """Compact JSON of value, cut to max_chars with "..."; bytes show as their length."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = _compact(value)
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 3] + "..."


def format_operation(event: ReplayEvent, op: Operation, verbose: bool = False) -> str:
    """One line: time, [ns,] agent, WRITE or DEL, key, version, then a value summary;
    verbose replaces the summary with the transaction, the commit_ts and the whole value."""
    # HH:MM:SSZ out of RFC 3339 "2026-01-02T10:22:12.163118Z"; the date is in to_dict().
    clock = event.time[11:19] + "Z" if event.time and len(event.time) >= 19 else "--:--:--Z"
    parts = [clock]
    if event.namespace != "default":
        parts.append(f"ns={_name(event.namespace)}")
    parts += [
        f"agent={_name(event.agent_id)}",
        "DEL  " if op.deleted else "WRITE",
        f"key={_name(op.key)}",
        f"v={op.version}",
    ]
    if verbose:
        parts += [f"txn={_name(event.txn_id)}", f"commit_ts={event.commit_ts}"]
        if not op.deleted:
            payload = (
                f"<{len(op.value)} bytes>"
                if isinstance(op.value, (bytes, bytearray))
                else _compact(op.value)
            )
            parts.append(f"payload={payload}")
    elif not op.deleted:
        parts.append(format_value_summary(op.value))
    return "  ".join(parts)


def _name(name: str) -> str:
    # A key may hold any byte but NUL and "/", a newline too: quote what would not print.
    return name if name.isprintable() else json.dumps(name)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
