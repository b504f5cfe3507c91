"""The one way to the database: every connection, pooled or dedicated, is taken here.

Why one way: a database outage must look the same from every caller. A driver error that means
"PostgreSQL is not answering" (connection refused or lost, a connect, pool or query timeout, an
administrator shutdown, too many connections, cannot connect now; ``ledger.dbfaults`` decides by
exception class and SQLSTATE class) leaves as ``errors.StoreUnavailable`` with the driver's
exception chained, so the API answers 503 and background loops back off, whoever made the call.
Other errors (a bug, a constraint) pass through unchanged.

Decisions:

- **Every statement has a deadline.** Pools are created here with ``command_timeout`` = the
  store's timeout, and acquiring waits at most that long, so a frozen server costs a request one
  timeout, never an indefinite hang. Dedicated connections choose their own command timeout.
- **A connection that failed that way is terminated, not returned to the pool.** Returning it
  would wait on the server again (for the cancellation of the timed-out statement, then for the
  reset query) and a frozen server answers neither; terminating is immediate and the pool opens a
  fresh connection next time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from ledger import dbfaults, errors

# Database errors by kind (dbfaults.KINDS), counted where driver errors are translated; process-wide,
# as the driver's connections are (api/metrics.py exposes them as ledger_db_errors_total).
ERRORS: dict[str, int] = dict.fromkeys(dbfaults.KINDS, 0)


def count_error(exc: BaseException) -> None:
    """Count a failed database call (once, where its error is translated)."""
    found = dbfaults.kind(exc)
    ERRORS[found] = ERRORS.get(found, 0) + 1


def unavailable(exc: BaseException) -> errors.StoreUnavailable:
    """The store's error for a driver failure; raise it ``from exc``."""
    if isinstance(exc, errors.StoreUnavailable):
        return exc
    return errors.StoreUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
                  asyncio.TimeoutError)


@contextlib.asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block of database calls; an outage inside it leaves as StoreUnavailable."""
    try:
        yield
    except errors.StoreUnavailable:
        raise
    except Exception as exc:
        if isinstance(exc, _DRIVER_ERRORS):
            count_error(exc)
        if dbfaults.is_unavailable(exc):
            raise unavailable(exc) from exc
        raise


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset query.

    That query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is a round trip on
    every release, a fifth of the API process's CPU per single-event append. Nothing here leaves
    session state on a pooled connection: LISTEN, session advisory locks and long scans use
    dedicated connections (``connect``), cursors live inside transactions, and nothing SETs a
    session variable. A transaction left open is still rolled back by asyncpg on release.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(dsn: str, *, max_size: int, timeout: float) -> asyncpg.Pool:
    async with translated():
        pool = await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, timeout=timeout,
                                         command_timeout=timeout, connection_class=PooledConnection)
    assert pool is not None
    return pool


async def connect(dsn: str, *, timeout: float = 60.0, command_timeout: float | None = None,
                  **options: Any) -> asyncpg.Connection:
    """A dedicated connection (LISTEN, session locks, long scans); the caller closes it."""
    async with translated():
        conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=timeout, command_timeout=command_timeout,
                                                          **options)
    return conn


async def acquire(pool: asyncpg.Pool, *, timeout: float) -> asyncpg.Connection:
    """A pooled connection for a caller that keeps it across calls (the writer); give it back with
    ``release``."""
    async with translated():
        conn: asyncpg.Connection = await pool.acquire(timeout=timeout)
    return conn


async def release(pool: asyncpg.Pool, conn: asyncpg.Connection, *, broken: bool = False,
                  timeout: float = 1.0) -> None:
    """Back to the pool; ``broken`` (it failed by an outage, or its call was cancelled) terminates it."""
    if broken:
        conn.terminate()
    with contextlib.suppress(Exception):
        await asyncio.shield(pool.release(conn, timeout=timeout))


@contextlib.asynccontextmanager
async def pooled(pool: asyncpg.Pool, *, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one block of calls (the usual way in)."""
    async with translated():
        conn = await acquire(pool, timeout=timeout)
        broken = False
        try:
            yield conn
        except BaseException as exc:
            broken = isinstance(exc, asyncio.CancelledError) or dbfaults.is_unavailable(exc)
            raise
        finally:
            await release(pool, conn, broken=broken, timeout=timeout)


@contextlib.asynccontextmanager
async def deadline(when: float) -> AsyncIterator[None]:
    """Database work (and waiting for a turn at it) that must be done by loop time ``when``; a block
    still running then is cancelled and leaves as StoreUnavailable."""
    try:
        async with asyncio.timeout_at(when):
            yield
    except TimeoutError as exc:
        raise errors.StoreUnavailable("no answer from the database in time") from exc
