"""Wakes readers when the log grows, through LISTEN on a dedicated connection, and knows the head.

One connection per process listens; readers wait on an in-process token instead of each holding a
connection or polling. The token is taken *before* a reader queries, so a notification that lands
between the query and the wait is never lost. When the listening connection drops, every reader is
woken (notifications may have been missed meanwhile) and the notifier reconnects with backoff.

Every path into the log sends one NOTIFY per committed batch whose payload is the batch's last
position, delivered only at commit: so ``head``, the highest payload seen, is always a committed
position, and it is how this process learns of appends made by others (reads wait for it, see
api/reads.py). It is read from the log once per connection, after LISTEN, so nothing committed
before the process started or while it was disconnected is missed.

A notification can still be on its way when a client, answered by another process, asks this one
to read. ``sync`` closes that gap without reading the log: PostgreSQL signals every listener
before a commit returns, and a listening backend sends what it was signalled before it answers the
next query on its connection. So once a round trip on the listening connection that started after
the request arrived is answered, ``head`` covers every commit acknowledged before. Readers arriving
together share one round trip; the keep-alive ping is one too, so the connection runs one query at
a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Final

import asyncpg

from ledger import db, dbfaults, errors, meters, writer

_HEAD: Final = "SELECT coalesce(max(position), 0) FROM events"

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, dsn: str, *, ping_interval: float = 10.0, connect_timeout: float = 5.0):
        self._dsn = dsn
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._event = asyncio.Event()
        self.head = 0
        # When the head moved (for the projector's lag in seconds, api/metrics.py).
        self.moves = meters.HeadTimes()
        self.connected = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._round = asyncio.Lock()
        self._rounds_started = 0
        self._rounds_done = 0
        self._failures = 0

    def token(self) -> asyncio.Event:
        return self._event

    @property
    def backend_pid(self) -> int | None:
        """The listening backend's process id (``pg_stat_activity.pid``), while listening."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def sync(self) -> int | None:
        """The head once every commit acknowledged before this call has been received.

        None when not listening: the caller reads the head from the log. If the round trip fails
        the connection is dropped (the loop reconnects) and StoreUnavailable is raised, for this
        caller and for those queued behind it, so an outage costs a reader one timeout, not two.
        """
        needed = self._rounds_started + 1  # a round trip that starts from now on
        failures = self._failures
        async with self._round:
            if self._failures > failures:
                raise errors.StoreUnavailable("the notifier's connection failed")
            conn = self._conn
            if conn is None:
                return None
            if self._rounds_done < needed:
                self._rounds_started += 1
                try:
                    await conn.execute("SELECT 1", timeout=self._connect_timeout)
                except Exception as exc:
                    if not dbfaults.is_unavailable(exc):
                        raise
                    self._failures += 1
                    db.count_error(exc)
                    self._conn = None
                    conn.terminate()
                    raise db.unavailable(exc) from exc
                self._rounds_done = self._rounds_started
        return self.head

    def wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, token: asyncio.Event, timeout: float | None = None) -> bool:
        """Wait until something happened after ``token`` was taken; False on timeout."""
        try:
            await asyncio.wait_for(token.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            position = int(payload)
        except ValueError:
            position = 0
        if position > self.head:
            self.head = position
            self.moves.moved(position, time.monotonic())
        self.wake()

    async def run(self) -> None:
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await db.connect(self._dsn, timeout=self._connect_timeout)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(writer.NOTIFY_CHANNEL, self._on_notify)
                # After LISTEN: whatever commits from now on is notified, whatever came before is read.
                head = int(await conn.fetchval(_HEAD, timeout=self._connect_timeout))
                if head > self.head:
                    self.head = head
                    self.moves.moved(head, time.monotonic())
                self._conn = conn
                self.connected.set()
                self.wake()
                delay = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self._ping_interval)
                    except TimeoutError:
                        await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not dbfaults.is_unavailable(exc):
                    log.warning("notifier connection failed: %r", exc)
            finally:
                self._conn = None
                self.connected.clear()
                if conn is not None:
                    conn.terminate()
            self.wake()
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)
