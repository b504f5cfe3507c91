"""Point-in-time replay: the fleet as it was at any position or moment of the log.

State at N = the nearest snapshot at or below N, then every later event up to N folded through
``projections.fleet``, read with a server-side cursor so memory does not grow with the range. The
same fold keeps the read models, so replay at the head equals them. A moment in time maps to the
last event recorded at or before it: the writer keeps ``recorded_at`` non-decreasing in position
order, so that is a short index walk, not a scan. An event that does not decode stops a replay
that reaches it (``ledger.errors.Undecodable``, projections/undecodable.py): a state that skipped it
would be one the fleet never had.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncGenerator
from typing import Any, Final

import asyncpg

from projections import fleet, snapshots, undecodable

EVENTS: Final = ("SELECT position, stream, version, type, data::text, metadata::text, recorded_at"
                 " FROM events WHERE position > $1 AND position <= $2 ORDER BY position")
CHUNK: Final = 5000

async def chunks(cursor: Any, size: int = CHUNK) -> AsyncGenerator[list[Any], None]:
    """A cursor's rows a chunk at a time; the next chunk is fetched while the caller works on this
    one, so PostgreSQL and the fold overlap. Use it under ``contextlib.aclosing``."""
    fetching = asyncio.ensure_future(cursor.fetch(size))
    try:
        while True:
            rows = await fetching
            more = len(rows) == size
            if more:
                fetching = asyncio.ensure_future(cursor.fetch(size))
            yield rows
            if not more:
                return
    finally:
        if not fetching.done():
            fetching.cancel()


async def fold_until(conn: asyncpg.Connection, state: fleet.Fleet, until: int) -> fleet.Fleet:
    """Fold the events after ``state.position`` up to ``until`` into ``state``; needs a transaction.

    Each chunk is folded in a worker thread, so a long replay never holds the event loop: only one
    thread touches ``state`` at a time (each chunk is awaited before the next)."""
    cursor = await conn.cursor(EVENTS, state.position, until)
    async with contextlib.aclosing(chunks(cursor)) as chunked:
        async for rows in chunked:
            await asyncio.to_thread(undecodable.fold_all, "replay", state, rows)
    return state


async def fleet_at(conn: asyncpg.Connection, position: int) -> fleet.Fleet:
    """The fleet after the event at ``position`` (0: before any event)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        state = await snapshots.nearest(conn, position) or fleet.empty()
        await fold_until(conn, state, position)
    return state


async def head(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))


async def position_at(conn: asyncpg.Connection, moment: dt.datetime) -> int:
    """The last position recorded at or before ``moment`` (0 when the log starts later)."""
    found = await conn.fetchval(
        "SELECT max(position) FROM events WHERE recorded_at ="
        " (SELECT max(recorded_at) FROM events WHERE recorded_at <= $1)", moment)
    return int(found or 0)
