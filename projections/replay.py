"""Point-in-time replay: the fleet as it was at any position or moment of the log.

State at N = the nearest snapshot at or below N, then every later event up to N folded through
``projections.fleet``, read with a server-side cursor so memory does not grow with the range. The
same fold keeps the read models, so replay at the head equals them. A moment in time maps to the
last event recorded at or before it: the writer keeps ``recorded_at`` non-decreasing in position
order, so that is a short index walk, not a scan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Final

import asyncpg

from projections import fleet, snapshots

EVENTS: Final = ("SELECT position, stream, version, type, data::text, metadata::text, recorded_at"
                 " FROM events WHERE position > $1 AND position <= $2 ORDER BY position")
CHUNK: Final = 5000

async def fold_until(conn: asyncpg.Connection, state: fleet.Fleet, until: int) -> fleet.Fleet:
    """Fold the events after ``state.position`` up to ``until`` into ``state``; needs a transaction.

    The next chunk is fetched while the current one is folded, so PostgreSQL and the fold overlap.
    """
    cursor = await conn.cursor(EVENTS, state.position, until)
    fetching = asyncio.ensure_future(cursor.fetch(CHUNK))
    try:
        while True:
            rows = await fetching
            more = len(rows) == CHUNK
            if more:
                fetching = asyncio.ensure_future(cursor.fetch(CHUNK))
            for row in rows:
                fleet.fold_row(state, *row)
            if not more:
                return state
    finally:
        if not fetching.done():
            fetching.cancel()


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
