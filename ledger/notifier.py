"""Wakes readers when the log grows, through LISTEN on a dedicated connection.

One connection per process listens; readers wait on an in-process token instead of each holding a
connection or polling. The token is taken *before* a reader queries, so a notification that lands
between the query and the wait is never lost. When the listening connection drops, every reader is
woken (notifications may have been missed meanwhile) and the notifier reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import asyncpg

from ledger import db, dbfaults, writer

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, dsn: str, *, ping_interval: float = 10.0, connect_timeout: float = 5.0):
        self._dsn = dsn
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._event = asyncio.Event()
        self.head = 0
        self.connected = asyncio.Event()

    def token(self) -> asyncio.Event:
        return self._event

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
            self.head = max(self.head, int(payload))
        except ValueError:
            pass
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
                self.connected.set()
                self.wake()
                delay = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self._ping_interval)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=self._connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not dbfaults.is_unavailable(exc):
                    log.warning("notifier connection failed: %r", exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    conn.terminate()
            self.wake()
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)
