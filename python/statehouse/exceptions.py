# SPDX-License-Identifier: MIT
"""Exceptions of the statehouse module (the client of a statehoused mount).

Every error carries the errno the mount answered with, when there was one: the errno is
the file interface's whole error vocabulary (statehouse(5), ERRORS), and callers that
need more than the class can branch on it.
"""


class StatehouseError(Exception):
    """Base of every statehouse error; errno is the mount's errno, or None."""

    def __init__(self, message, errno=None):
        super().__init__(message)
        self.errno = errno


class TransactionError(StatehouseError):
    """A transaction could not begin, stage, commit or abort.

    reason is "conflict" (ESTALE: another transaction committed one of its keys first;
    key then names it as "ns/agent/key"), "expired" (ETIMEDOUT), "finished" (used after
    commit or abort) or None.
    """

    def __init__(self, message, errno=None, reason=None, key=None):
        super().__init__(message, errno)
        self.reason = reason
        self.key = key


class NotFoundError(StatehouseError):
    """Something the call needs does not exist (ENOENT), e.g. a key a delete names."""


class ConnectionError(StatehouseError):  # noqa: A001 - the SDK's name, kept on purpose
    """No statehouse mount answers: no mount given, not a mount, or a dead one (ENOTCONN)."""
