"""Which database failures mean "unavailable, retry later" rather than a bug or bad input."""

from __future__ import annotations

import asyncio

import asyncpg

_UNAVAILABLE_CLASSES = ("08", "53", "57")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _UNAVAILABLE_CLASSES
    return False


def is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] == "22"
    return False
