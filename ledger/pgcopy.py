"""A whole write transaction around a binary COPY, sent as one message: one round trip.

asyncpg's ``copy_records_to_table`` sends ``COPY … FROM STDIN`` as a simple-protocol Query and
streams the rows right behind it without waiting for the server's CopyInResponse. PostgreSQL runs a
simple Query's statements in order and, when it reaches the COPY, takes the rows that follow, then
goes on with the rest of the string. So ``BEGIN; <lock>; COPY …; <notify>; COMMIT`` plus the rows is
a complete transaction in one round trip, where the public call needs three (BEGIN, COPY, COMMIT).

If a statement before the COPY fails, the server skips the rest of the string and drops the copy
data that follows (the protocol says so); the error comes back as usual and the connection is left
in a failed transaction, which the caller rolls back as it would after any failed statement.

This uses the two internal calls ``copy_records_to_table`` itself makes (``Connection._prepare`` for
the column codecs, ``_protocol.copy_in``), so it is tied to the pinned asyncpg (0.32.0); the store
tests exercise it on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def copy_in_transaction(
    conn: Any,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    before: str = "",
    after: str = "",
    timeout: float,
) -> None:
    """Run ``before``, COPY ``rows`` into ``table``, then ``after``, as one simple Query message.

    ``before`` and ``after`` are trusted SQL (constants of the caller), each one or more statements.
    """
    col_list = ", ".join(_quote(c) for c in columns)
    # The codecs come from a prepared statement over the same columns, as in copy_records_to_table.
    intro = await conn._prepare(f"SELECT {col_list} FROM {_quote(table)} LIMIT 1", use_cache=True)
    copy = f"COPY {_quote(table)} ({col_list}) FROM STDIN (FORMAT binary)"
    statement = "; ".join(part for part in (before, copy, after) if part)
    await conn._protocol.copy_in(statement, None, None, rows, intro._state, timeout)
