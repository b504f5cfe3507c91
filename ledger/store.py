"""The event store: appends through the batching writer, reads by stream and by position, and
subscriptions that catch up and then follow live appends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import asyncpg

from ledger import db, errors, notifier, records, writer

_ALL = f"SELECT {records.COLUMNS} FROM events WHERE position > $1"


class EventStore:
    def __init__(self, pool: asyncpg.Pool, notify: notifier.Notifier, *, timeout: float = 5.0,
                 max_batch_events: int = 5000):
        self.pool = pool
        self.notifier = notify
        self.writer = writer.BatchingWriter(pool, max_batch_events=max_batch_events, timeout=timeout)
        self._timeout = timeout

    def append(
        self, stream: str, expected: records.ExpectedVersion, events: Sequence[records.NewEvent]
    ) -> Awaitable[records.AppendResult]:
        """Await it for the result. Not a coroutine itself: one frame less on the hottest path."""
        return self.writer.append(records.AppendRequest(stream, expected, tuple(events)))

    def connection(self, timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection (``ledger.db.pooled``): an outage becomes StoreUnavailable."""
        return db.pooled(self.pool, timeout=self._timeout if timeout is None else timeout)

    async def ping(self, timeout: float) -> None:
        """One round trip within ``timeout``, or StoreUnavailable."""
        async with self.connection(timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)

    async def _fetch(self, query: str, *args: Any, pool: asyncpg.Pool | None = None) -> list[Any]:
        async with db.pooled(pool or self.pool, timeout=self._timeout) as conn:
            return list(await conn.fetch(query, *args, timeout=self._timeout))

    async def read_stream(
        self, stream: str, from_version: int = 1, limit: int = 100
    ) -> list[records.RecordedEvent]:
        rows = await self._fetch(
            f"SELECT {records.COLUMNS} FROM events WHERE stream = $1 AND version >= $2"
            " ORDER BY version LIMIT $3",
            stream, from_version, limit,
        )
        if not rows and await self.stream_version(stream) == 0:
            raise errors.StreamNotFound(stream)
        return [records.from_row(r) for r in rows]

    async def stream_version(self, stream: str) -> int:
        rows = await self._fetch("SELECT max(version) FROM events WHERE stream = $1", stream)
        return int(rows[0][0] or 0)

    async def read_all(
        self,
        after: int = 0,
        limit: int = 100,
        *,
        types: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        until: int | None = None,
        pool: asyncpg.Pool | None = None,
    ) -> list[records.RecordedEvent]:
        """Up to ``limit`` events after ``after``; ``pool``: read through that pool instead of the
        store's (the expensive lane's, api/lanes.py)."""
        query, args = _ALL, list[Any]([after])
        if types:
            args.append(list(types))
            query += f" AND type = ANY(${len(args)}::text[])"
        if categories:
            args.append(list(categories))
            query += f" AND category = ANY(${len(args)}::text[])"
        if until is not None:
            args.append(until)
            query += f" AND position <= ${len(args)}"
        args.append(limit)
        query += f" ORDER BY position LIMIT ${len(args)}"
        return [records.from_row(r) for r in await self._fetch(query, *args, pool=pool)]

    async def head(self) -> tuple[int, str | None, Any]:
        rows = await self._fetch(
            "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
        )
        if not rows:
            return 0, None, None
        return rows[0]["position"], rows[0]["hash"], rows[0]["recorded_at"]

    async def synced_head(self) -> int | None:
        """A head at least as far as every write acknowledged (by any process) before the call, from
        memory: this writer's commits and the notifications of every other (``Notifier.sync``). None
        when the listener cannot vouch for it; ask ``head()`` then."""
        notified = await self.notifier.sync()
        if notified is None:
            return None
        return max(notified, self.writer.committed)

    async def subscribe(
        self,
        after: int = 0,
        *,
        batch: int = 500,
        types: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
    ) -> AsyncIterator[records.RecordedEvent]:
        """Every event after ``after`` in order, then live ones as they commit; never ends.

        A dropped database connection is waited out and reading resumes where it stopped.
        """
        cursor = after
        delay = 0.1
        while True:
            token = self.notifier.token()
            try:
                page = await self.read_all(cursor, batch, types=types, categories=categories)
            except errors.StoreUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            for event in page:
                cursor = event.position
                yield event
            if len(page) < batch:
                await self.notifier.wait(token)
