"""Supervised tasks never die silently: a task that raises is logged with its traceback, counted
in ``ledger_task_restarts_total``, named by /readyz (503) while it is restarting, and restarted
with backoff until it stays up; readiness then comes back by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from api import app as app_mod
from api import keys
from ledger import components, tasks
from tests.applier_support import eventually

pytestmark = pytest.mark.timeout(60)


class Flaky:
    """A background loop that crashes on start until it is healed, then runs for ever."""

    def __init__(self) -> None:
        self.healed = asyncio.Event()
        self.starts = 0

    async def run(self) -> None:
        self.starts += 1
        if not self.healed.is_set():
            raise RuntimeError(f"broken on start {self.starts}")
        await asyncio.Event().wait()


async def test_a_crashing_task_is_logged_counted_named_by_readyz_and_restarted(
        aiohttp_client, database_url, settings, caplog):
    flaky = Flaky()
    app = app_mod.make_app(settings)

    async def flaky_context(app: web.Application) -> AsyncIterator[None]:
        async with tasks.running("flaky", flaky.run, app[keys.COMPONENTS]):
            yield

    app.cleanup_ctx.append(flaky_context)
    client = await aiohttp_client(app)
    try:
        await eventually(lambda: asyncio.sleep(0, flaky.starts >= 3), what="three starts")
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert ready.headers["Retry-After"] == str(settings.retry_after)
        named = (await ready.json())["not_ready"]["flaky"]
        assert named["status"] == "restarting"
        assert named["reason"].startswith("RuntimeError: broken on start")

        metrics = await (await client.get("/metrics")).text()
        counted = [line for line in metrics.splitlines() if line.startswith('ledger_task_restarts_total{task="flaky"}')]
        assert counted and float(counted[0].split()[-1]) >= 2

        crashes = [r for r in caplog.records if r.name == "ledger.tasks" and "flaky" in r.getMessage()]
        assert crashes and all(r.levelno == logging.ERROR and r.exc_info for r in crashes)
        assert "Traceback" in caplog.text and "RuntimeError: broken on start 1" in caplog.text

        flaky.healed.set()

        async def ready_again() -> bool:
            return (await client.get("/readyz")).status == 200

        await eventually(ready_again, timeout=30, what="ready again once the task stays up")
        assert (await (await client.get("/readyz")).json())["not_ready"] == {}
    finally:
        await client.close()


async def test_a_restarted_task_counts_as_up_only_once_it_stays_up():
    registry = components.Registry()
    flaky = Flaky()
    supervisor = asyncio.create_task(tasks.supervise("flaky", flaky.run, registry, first_delay=0.05))
    try:
        await eventually(lambda: asyncio.sleep(0, flaky.starts >= 2), what="a restart")
        assert _status(registry, "flaky") is components.Status.RESTARTING
        flaky.healed.set()
        await eventually(lambda: asyncio.sleep(0, _status(registry, "flaky") is components.Status.UP),
                         what="up after staying up")
        assert registry.restarts["flaky"] == flaky.starts - 1
    finally:
        supervisor.cancel()
        with pytest.raises(asyncio.CancelledError):
            await supervisor
    assert registry.get("flaky") is None, "a task stopped on purpose leaves the registry"


def _status(registry: components.Registry, name: str) -> components.Status | None:
    found = registry.get(name)
    return None if found is None else found.status


async def test_a_task_that_returns_is_restarted_and_counted():
    registry = components.Registry()
    returned = 0

    async def once() -> None:
        nonlocal returned
        returned += 1
        if returned > 2:
            await asyncio.Event().wait()

    supervisor = asyncio.create_task(tasks.supervise("once", once, registry, first_delay=0.01))
    try:
        await eventually(lambda: asyncio.sleep(0, returned >= 3), what="restarted twice")
        assert registry.restarts["once"] == 2
    finally:
        supervisor.cancel()
        with pytest.raises(asyncio.CancelledError):
            await supervisor


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again_until_it_stops():
    # Python 3.11's wait_for can swallow a cancellation; `running` used to await such a task forever.
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1
                if cancels >= 3:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(task, grace=30), 20)
    assert task.cancelled() and cancels == 3


async def test_a_task_that_never_stops_is_left_after_the_grace_with_its_stack_logged(caplog):
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(deaf(), name="deaf")
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(task, grace=0.3), 10)
    assert not task.done()
    assert any("deaf did not stop" in r.getMessage() and "deaf" in r.getMessage() for r in caplog.records)
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
