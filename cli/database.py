"""Opening the ledger's database from a command, for the commands that work on it directly.

Decisions:

- A reader (``verify``, ``digest``, ``export --database-url``) opens only what exists: an explicit
  ``--database-url``, or the embedded server of an existing ``--data-dir``. It never creates a
  data directory and never migrates; a database without the ledger's tables is "not found".
- A writer (``import``) takes the service's settings (``LEDGER_DATABASE_URL``, else the embedded
  server under the data directory, created if need be) and migrates first.
- The embedded server is started for the command and stopped afterwards only if this command
  started it; one the service runs is used and left running.
- Driver errors become one-line failures (cli/exits.py): unreachable (3), no ledger there (4).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from cli import exits, options
from ledger import db, errors, migrate, pgembed
from ledger import settings as settings_mod

CONNECT_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def _server(database_url: str | None, data_dir: Path | None) -> AsyncIterator[str]:
    if database_url:
        yield database_url
        return
    if data_dir is None:
        raise exits.Failure(exits.Code.USAGE, "give --database-url or --data-dir")
    try:
        url, embedded = await asyncio.to_thread(pgembed.start_or_join, data_dir)
    except pgembed.EmbeddedPostgresError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise exits.Failure(exits.Code.UNREACHABLE, f"cannot start the embedded PostgreSQL under {data_dir}: "
                            f"{first}") from exc
    try:
        yield url
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _failure(exc: BaseException) -> exits.Failure:
    if isinstance(exc, asyncpg.UndefinedTableError):
        return exits.Failure(exits.Code.NOT_FOUND, f"no ledger in this database ({exc})")
    if isinstance(exc, errors.StoreUnavailable):
        return exits.Failure(exits.Code.UNREACHABLE, f"cannot reach the database: {exc}")
    return exits.Failure(exits.Code.UNREACHABLE, f"cannot use the database: {type(exc).__name__}: {exc}")


_CONNECTING = (errors.StoreUnavailable, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_QUERYING = (errors.StoreUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _connect(url: str, timeout: float) -> asyncpg.Connection:
    try:
        return await db.connect(url, timeout=timeout)
    except _CONNECTING as exc:
        raise _failure(exc) from exc


@contextlib.asynccontextmanager
async def read_only(database_url: str | None, data_dir: Path | None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to an existing ledger database; nothing is created or migrated."""
    if not database_url and data_dir is not None:
        options.require_dir(data_dir)
    async with _server(database_url, data_dir) as url:
        conn = await _connect(url, CONNECT_TIMEOUT)
        try:
            yield conn
        except _QUERYING as exc:
            raise _failure(exc) from exc
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def service_database(settings: settings_mod.Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database the service's settings name, embedded (created if need be) or
    external."""
    async with _server(settings.database_url, settings.data_dir) as url:
        conn = await _connect(url, settings.db_timeout)
        try:
            yield conn
        finally:
            await conn.close()


async def migrate_to_head(conn: asyncpg.Connection) -> list[str]:
    try:
        return await migrate.migrate(conn)
    except _QUERYING as exc:
        raise _failure(exc) from exc


@contextlib.asynccontextmanager
async def migrated(settings: settings_mod.Settings) -> AsyncIterator[asyncpg.Connection]:
    """A migrated connection to the database the service's settings name."""
    async with service_database(settings) as conn:
        await migrate_to_head(conn)
        yield conn
