"""Supervised forever-tasks: a background loop that dies unexpectedly is logged and restarted,
never silently lost; cancelling it (at shutdown) stops it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


async def supervise(name: str, factory: Callable[[], Awaitable[None]], *, max_delay: float = 10.0) -> None:
    delay = 0.1
    while True:
        try:
            await factory()
            log.warning("background task %s returned; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s crashed; restarting in %.1fs", name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


@contextlib.asynccontextmanager
async def running(name: str, factory: Callable[[], Awaitable[None]]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``factory`` supervised for the duration of the block; cancel and await it after."""
    task = asyncio.create_task(supervise(name, factory), name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
