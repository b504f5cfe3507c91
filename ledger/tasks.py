"""Supervised forever-tasks: a background loop that dies unexpectedly is logged with its traceback,
counted, shown as restarting in the component registry (so /readyz names it) and restarted with
capped exponential backoff; it is never silently lost. Cancelling it (at shutdown) stops it for good.

A database outage is expected weather, not a bug: a task that stops because the database is
unavailable is logged as one warning line (no traceback) but otherwise handled alike.

A restarted task counts as up again only once it has run as long as it waited before the restart
(at most ``SETTLE`` seconds): a task that crashes at once, over and over, stays ``restarting`` with
its last error instead of flickering up between attempts. The backoff starts over after a task has
run longer than the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ledger import components, dbfaults, errors

log = logging.getLogger(__name__)

FIRST_DELAY = 0.1
MAX_DELAY = 10.0
SETTLE = 2.0
STOP_GRACE = 10.0
STOP_PERIOD = 1.0


def lost_database(exc: BaseException) -> bool:
    """The database went away (every error inside a TaskGroup's group, if it is one)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(lost_database(e) for e in exc.exceptions)
    return isinstance(exc, errors.StoreUnavailable) or dbfaults.is_unavailable(exc)


def crashed(exc: BaseException) -> bool:
    """Whether ``exc`` (every error inside a TaskGroup's group, if it is one) holds a real error,
    not only cancellations."""
    if isinstance(exc, BaseExceptionGroup):
        return any(crashed(e) for e in exc.exceptions)
    return not isinstance(exc, asyncio.CancelledError)


async def supervise(name: str, factory: Callable[[], Awaitable[None]], registry: components.Registry, *,
                    first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY) -> None:
    loop = asyncio.get_running_loop()
    delay = first_delay
    settle: asyncio.TimerHandle | None = None
    registry.up(name)
    try:
        while True:
            started = loop.time()
            try:
                await factory()
                error: BaseException | str = "returned unexpectedly"
                log.error("background task %s returned unexpectedly; restarting in %.1fs", name, delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
                if lost_database(exc):
                    log.warning("background task %s lost the database (%s); restarting in %.1fs", name,
                                components.error_text(exc), delay)
                else:
                    log.exception("background task %s crashed; restarting in %.1fs", name, delay)
            finally:
                if settle is not None:
                    settle.cancel()
            if loop.time() - started > max_delay:
                delay = first_delay
            registry.count_restart(name)
            registry.restarting(name, error)
            await asyncio.sleep(delay)
            settle = loop.call_later(min(delay, SETTLE), registry.recovered, name)
            delay = min(delay * 2, max_delay)
    finally:
        if settle is not None:
            settle.cancel()
        registry.forget(name)


@contextlib.asynccontextmanager
async def running(name: str, factory: Callable[[], Awaitable[None]],
                  registry: components.Registry) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``factory`` supervised for the duration of the block; cancel and await it after."""
    task = asyncio.create_task(supervise(name, factory, registry), name=name)
    try:
        yield task
    finally:
        await stop(task)


async def stop(task: asyncio.Task[None], *, grace: float = STOP_GRACE) -> None:
    """Cancel ``task`` and wait for it, cancelling again every ``STOP_PERIOD`` seconds.

    Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives just as its inner
    await completes, and a loop around it then runs on: a second cancellation ends it. A task
    still running after ``grace`` seconds is logged with its stack and left, so a shutdown never
    hangs on it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=min(STOP_PERIOD, max(deadline - loop.time(), 0.01)))
    if not task.done():
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.error("background task %s did not stop within %.0fs of being cancelled; leaving it\n%s",
                  task.get_name(), grace, stack.getvalue())
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s ended with an error while stopping", task.get_name(),
                  exc_info=task.exception())
