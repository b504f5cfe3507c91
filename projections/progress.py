"""How far the read models have got, for reads that must see a write (``?min_position=N``).

Readers wait on an in-process token that is replaced whenever the projection advances, as
``ledger.notifier`` does for the log, so nobody polls. In the process that runs the projector it
advances the progress directly after each commit; a process without a projector follows the
projector elsewhere through ``NOTIFY ledger_projection`` (sent inside the checkpoint transaction,
so it arrives only once the rows are visible).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import asyncpg

from ledger import db, errors
from projections import tables

log = logging.getLogger(__name__)
CHANNEL: Final = "ledger_projection"


class Progress:
    def __init__(self) -> None:
        self.position = 0
        self._event = asyncio.Event()

    def advance(self, position: int) -> None:
        """The projection has folded ``position``; notifications may arrive late, so never go back."""
        if position > self.position:
            self.reset(position)

    def reset(self, position: int) -> None:
        """Set the position outright: it goes back only when the read models are rebuilt."""
        self.position = position
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def reached(self, position: int, timeout: float) -> bool:
        """Wait until the projection has folded ``position``; False if ``timeout`` passes first."""
        try:
            async with asyncio.timeout(timeout):
                while self.position < position:
                    await self._event.wait()
        except TimeoutError:
            return self.position >= position
        return True

    async def follow(self, dsn: str, *, connect_timeout: float = 5.0, ping_interval: float = 10.0) -> None:
        """Forever: track a projector in another process through LISTEN, reconnecting as needed."""
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await db.connect(dsn, timeout=connect_timeout, command_timeout=connect_timeout)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.reset(await tables.checkpoint(conn))
                delay = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), ping_interval)
                    except TimeoutError:
                        self.advance(await tables.checkpoint(conn))
            except (errors.StoreUnavailable, TimeoutError, OSError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as exc:
                log.debug("projection listener reconnecting: %r", exc)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.advance(int(payload))
