"""Whether the database answers, known in advance, so readiness never waits on it.

A probe asks ``SELECT 1`` every ``interval`` seconds on a connection of its own (never one from
the pool: a pool exhausted by a frozen database would make the answer wait) and reports the result
into the component registry as ``database``. ``/readyz`` then only reads memory and answers at
once, whatever the database does: stopped, refusing connections, or frozen (SIGSTOP), where a
query would otherwise hang (a round that gets no answer within ``timeout`` reports it down).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import asyncpg

from ledger import components

NAME: Final = "database"


class Probe:
    def __init__(self, dsn: str, registry: components.Registry, *, timeout: float,
                 interval: float = 1.0) -> None:
        self._dsn = dsn
        self._registry = registry
        self.timeout = timeout
        self.interval = interval
        self._conn: asyncpg.Connection | None = None

    async def check(self) -> bool:
        """One round: ask, and report what happened (True when the database answered)."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._dsn, timeout=self.timeout)
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
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None
