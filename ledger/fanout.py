"""One shared tail of the log per process, fanned out to any number of live readers.

Why: a thousand live readers must not each hold a database connection or each poll. One task
follows the head with ``EventStore.subscribe`` (woken by NOTIFY) and keeps the most recent
``capacity`` events in a ring; readers hold only a cursor and wait on an in-process token.

Decisions:

- **A shared ring, not a queue per reader.** Every reader sees the same events, so one buffer of
  ``capacity`` entries serves all of them; memory does not grow with readers or with their lag.
  Each entry has a slot where a reader-side encoding (an SSE frame) is cached, so a thousand
  readers encode an event once.
- **Behind means cut off.** A reader whose cursor falls out of the ring (more than ``capacity``
  events behind the tail) gets ``Behind`` from ``since``; it was reading too slowly to be served
  from memory and must start again with its own paged reads (see api/live.py).
- **Started by the first reader.** Until a reader asks (``ready``), the tail reads nothing, so a
  process that serves no live readers does not read every appended event a second time.
- **Joining is by position.** ``position`` is the last event the tail has taken in; everything at
  or below it is committed. A reader behind ``oldest() - 1`` reads pages from the store up to
  ``position`` and then switches to the ring, so the seam has neither a gap nor a duplicate.
"""

from __future__ import annotations

import asyncio
from typing import Final

from ledger import records, store

CAPACITY: Final = 4096


class Behind(Exception):
    def __init__(self, cursor: int, oldest: int) -> None:
        self.cursor = cursor
        self.oldest = oldest
        super().__init__(f"cursor {cursor} fell out of the live buffer (oldest {oldest})")


class Entry:
    __slots__ = ("encoded", "event")

    def __init__(self, event: records.RecordedEvent) -> None:
        self.event = event
        self.encoded: bytes | None = None


class Tail:
    def __init__(self, event_store: store.EventStore, *, capacity: int = CAPACITY) -> None:
        self._store = event_store
        self._capacity = capacity
        # Readers run between the tail's reads, so a page must stay well inside the ring.
        self._batch = max(1, min(1000, capacity // 4))
        self._ring: list[Entry | None] = [None] * capacity
        self._first = 0
        self._token = asyncio.Event()
        self.position = 0
        self.started = asyncio.Event()
        self.wanted = asyncio.Event()
        self.closed = False
        self.readers = 0

    def token(self) -> asyncio.Event:
        """Set when something happens after it was taken: new events, or closing."""
        return self._token

    def _wake(self) -> None:
        token, self._token = self._token, asyncio.Event()
        token.set()

    async def ready(self) -> None:
        """Return once the tail has its starting position, or is closing."""
        self.wanted.set()
        while not self.started.is_set() and not self.closed:
            await self._token.wait()

    def oldest(self) -> int:
        """The lowest position the ring still holds (``position + 1`` when it holds none)."""
        return max(self._first, self.position - self._capacity + 1)

    def covers(self, cursor: int) -> bool:
        """Whether a reader at ``cursor`` can continue from the ring alone."""
        return self.started.is_set() and cursor + 1 >= self.oldest()

    def since(self, cursor: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries after ``cursor``, oldest first; raises Behind if some are gone."""
        if cursor >= self.position:
            return []
        if cursor + 1 < self.oldest():
            raise Behind(cursor, self.oldest())
        end = min(self.position, cursor + limit)
        ring, size = self._ring, self._capacity
        return [ring[p % size] for p in range(cursor + 1, end + 1)]  # type: ignore[misc]

    async def run(self) -> None:
        """Follow the log from its head at first start; after a crash, from where it stopped."""
        if not self.started.is_set():
            await self.wanted.wait()
            self.position, _, _ = await self._store.head()
            self._first = self.position + 1
            self.started.set()
            self._wake()
        async for event in self._store.subscribe(self.position, batch=self._batch):
            self._ring[event.position % self._capacity] = Entry(event)
            self.position = event.position
            self._wake()

    def close(self) -> None:
        """Tell every reader to finish (at shutdown)."""
        self.closed = True
        self._wake()
