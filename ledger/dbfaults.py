"""Which database failures mean "unavailable, retry later" rather than a bug or bad input.

Decided by exception class and SQLSTATE class, never by message text (which is localized):

- ``OSError`` (connection refused, reset, unreachable), ``TimeoutError`` (connect, pool acquire
  and statement timeouts), asyncpg's ``InterfaceError`` family (connection closed or lost in the
  middle of an operation) and ``InternalClientError``;
- SQLSTATE class 08 (connection exception), 53 (insufficient resources: too many connections,
  out of memory or disk), 57 (operator intervention: admin or crash shutdown, cannot connect now,
  a statement cancelled);
- the store's own ``StoreUnavailable``, so a failure already translated stays one.
"""

from __future__ import annotations

import asyncio

import asyncpg

from ledger import errors

_UNAVAILABLE_CLASSES = ("08", "53", "57")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (errors.StoreUnavailable, OSError, asyncio.TimeoutError, asyncpg.InterfaceError,
                        asyncpg.InternalClientError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _UNAVAILABLE_CLASSES
    return False


def is_timeout(exc: BaseException) -> bool:
    """A deadline passed: the server may be frozen, so trying again at once would only wait again."""
    return isinstance(exc, asyncio.TimeoutError) or isinstance(exc.__cause__, asyncio.TimeoutError)


def is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] == "22"
    return False
