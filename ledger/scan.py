"""Reading a position range of the log in one pass: what export, import checks and verification use.

A million-event export or audit must run in bounded memory and must not wait for one giant result
set, so rows come through a server-side cursor (asyncpg ``conn.cursor`` inside a transaction)
that fetches ``prefetch`` rows per round trip while the caller works on the previous ones. The
transaction is READ ONLY and REPEATABLE READ: the scan sees one snapshot even while appends
continue, and since positions commit in order, that snapshot is a gapless prefix of the log.

The caller owns the connection (pool or direct) and should close the generator
(``contextlib.aclosing``) if it stops early, so the transaction ends with it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final

import asyncpg

from ledger import records

PREFETCH: Final = 2000

_RANGE: Final = (
    f"SELECT {records.COLUMNS} FROM events WHERE position > $1 AND position <= $2 ORDER BY position"
)
_UNBOUNDED: Final = 2**63 - 1


async def rows(
    conn: asyncpg.Connection, after: int = 0, until: int | None = None, *, prefetch: int = PREFETCH
) -> AsyncGenerator[records.RecordedEvent, None]:
    """Every event with ``after < position <= until`` (to the snapshot's head when ``until`` is None)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(_RANGE, after, _UNBOUNDED if until is None else until,
                                     prefetch=prefetch):
            yield records.RecordedEvent(*row)
