"""Keeps the embedded PostgreSQL running for as long as the service that owns it runs.

The embedded server is a separate process: it can die (killed, out of memory) while the service
goes on. The watch checks every ``interval`` seconds that its postmaster is alive; when it is not,
the component ``embedded-postgres`` goes down in the registry (so /readyz answers 503 naming it),
the restart is counted, and the server is started again on the same data directory and port, so
the pool, the notifier and every loop reconnect by themselves. It is never re-created: a data
directory that is gone is an error, not a fresh start. When ``attempts`` restarts in a row fail,
the watch reports why and calls ``give_up`` with a message, and the service stops with a non-zero
exit rather than serve without its database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from ledger import components, pgembed

log = logging.getLogger(__name__)

NAME: Final = "embedded-postgres"


class Watch:
    def __init__(self, server: pgembed.EmbeddedPostgres, registry: components.Registry,
                 give_up: Callable[[str], None], *, interval: float = 1.0, attempts: int = 5,
                 first_delay: float = 0.5) -> None:
        self._server = server
        self._registry = registry
        self._give_up = give_up
        self._interval = interval
        self._attempts = attempts
        self._first_delay = first_delay

    async def run(self) -> None:
        self._registry.up(NAME, port=self._server.port)
        while True:
            await asyncio.sleep(self._interval)
            if await asyncio.to_thread(self._server.running_port) is None:
                await self._restart()

    async def _restart(self) -> None:
        where = self._server.pgdata
        log.error("embedded PostgreSQL (data in %s) is not running; restarting it", where)
        self._registry.count_restart(NAME)
        delay = self._first_delay
        why = "its postmaster is gone"
        for attempt in range(1, self._attempts + 1):
            self._registry.down(NAME, f"the server died ({why}); restart attempt {attempt} of {self._attempts}")
            try:
                await asyncio.to_thread(self._server.restart)
            except pgembed.EmbeddedPostgresError as exc:
                why = str(exc).strip().splitlines()[0]
                log.warning("embedded PostgreSQL did not restart (attempt %d of %d): %s", attempt,
                            self._attempts, why)
                if attempt < self._attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
                continue
            log.warning("embedded PostgreSQL restarted on port %s", self._server.port)
            self._registry.up(NAME, port=self._server.port)
            return
        message = (f"embedded PostgreSQL (data in {where}) died and could not be restarted after "
                   f"{self._attempts} attempts: {why}")
        log.critical("%s; stopping the service", message)
        self._registry.down(NAME, message)
        self._give_up(message)
        await asyncio.Event().wait()  # stopping: the service cancels us on its way out
