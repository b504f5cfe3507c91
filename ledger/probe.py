"""Whether the database answers, asked on a connection of its own, so readiness never waits long.

A probe asks ``SELECT 1`` on a dedicated connection (never one from the pool: a pool exhausted by
a frozen database would make the answer wait) and reports the result into the component registry
as ``database``: every ``interval`` seconds in the background, and whenever ``/readyz`` asks. One
round at a time: callers that come while a round is in flight share it, so a burst of probes never
piles queries onto the database. ``answer(budget)`` waits for the round at most ``budget`` seconds
(counted from when the round started): a database that is stopped, refuses connections or is
frozen (SIGSTOP: connections accepted, nothing answered) is reported within that budget, and the
round itself gives up after ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import asyncpg

from ledger import components, db

NAME: Final = "database"


class Probe:
    def __init__(self, dsn: str, registry: components.Registry, *, timeout: float,
                 interval: float = 1.0) -> None:
        self._dsn = dsn
        self._registry = registry
        self.timeout = timeout
        self.interval = interval
        self._conn: asyncpg.Connection | None = None
        self._round: asyncio.Task[bool] | None = None
        self._started = 0.0

    def _current(self) -> asyncio.Task[bool]:
        if self._round is None or self._round.done():
            self._started = asyncio.get_running_loop().time()
            self._round = asyncio.create_task(self._ask(), name="database-probe-round")
        return self._round

    async def check(self) -> bool:
        """The round in flight, or a new one: True when the database answered."""
        return await asyncio.shield(self._current())

    async def answer(self, budget: float) -> str | None:
        """Why the database does not count as answering now (None: it answers), known within
        ``budget`` seconds of the round's start."""
        current = self._current()
        try:
            async with asyncio.timeout_at(self._started + budget):
                if await asyncio.shield(current):
                    return None
        except TimeoutError:
            waited = asyncio.get_running_loop().time() - self._started
            return f"no answer for {waited:.1f}s"
        found = self._registry.get(NAME)
        return found.reason if found is not None and found.reason else "no answer"

    async def _ask(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await db.connect(self._dsn, timeout=self.timeout)
                await self._conn.fetchval("SELECT 1")
        except TimeoutError:
            self._drop()
            self._registry.down(NAME, f"no answer within {self.timeout:g}s")
            return False
        except Exception as exc:  # whatever it is, the database did not answer SELECT 1
            self._drop()
            self._registry.down(NAME, components.error_text(exc))
            return False
        self._registry.up(NAME)
        return True

    async def run(self) -> None:
        try:
            while True:
                await self.check()
                await asyncio.sleep(self.interval)
        finally:
            if self._round is not None:
                self._round.cancel()
                with contextlib.suppress(BaseException):
                    await self._round
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None
