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


# Kinds of database errors, as counted in ``ledger_db_errors_total{kind}`` (docs/operations.md).
KINDS = ("timeout", "connection", "shutdown", "resources", "integrity", "data", "conflict", "other")
_KIND_OF_CLASS = {"08": "connection", "53": "resources", "57": "shutdown", "23": "integrity", "22": "data",
                  "40": "conflict"}


def kind(exc: BaseException) -> str:
    """What kind of failure ``exc`` is (one of ``KINDS``), by class and SQLSTATE as above."""
    if isinstance(exc, errors.StoreUnavailable):
        return kind(exc.__cause__) if exc.__cause__ is not None else "connection"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return "connection"
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate == "57014":  # query_canceled: a statement timeout
            return "timeout"
        return _KIND_OF_CLASS.get(sqlstate[:2], "other")
    return "other"
