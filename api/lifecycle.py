"""Start and stop of everything the app owns, each as one aiohttp cleanup context.

Order matters: the database first (embedded PostgreSQL when no URL is configured), then the store
with its writer and notifier tasks; what started is torn down in reverse, and only that.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import Final

from aiohttp import web

from api import keys
from api import locks as stream_locks
from ledger import credfile, db, migrate, notifier, pgembed, pgwatch, probe, store, tasks
from projections import progress, runner, targetindex

log = logging.getLogger(__name__)

CREDENTIALS_POLL_SECONDS: Final = 1.0


def load_credentials(app: web.Application) -> None:
    """The operator's credentials file, read at start: a malformed one stops start-up here (a
    credfile.CredentialsFileError naming the field), before anything else starts."""
    app[keys.CREDENTIALS] = credfile.Watched.from_settings(app[keys.SETTINGS])


def database_context(*, stop_adopted: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The database as a cleanup context: the configured URL, or the embedded PostgreSQL.

    An embedded server this process started is stopped at exit. One already running on the data
    directory is adopted; ``stop_adopted`` says whether it is stopped too: yes for ``ledger serve``
    (its previous owner died, as after a SIGKILL), no for a guest such as ``ledger applier`` next
    to a running service.

    A server this process owns is watched (ledger/pgwatch.py): restarted if it dies; if it cannot
    be, the process stops itself (SIGTERM, as an operator would) and ``keys.FATAL`` says why, for
    the command to exit non-zero with that message.
    """

    async def database(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        owned: pgembed.EmbeddedPostgres | None = None
        if settings.database_url:
            app[keys.DSN] = settings.database_url
        else:
            app[keys.DSN], owned = await asyncio.to_thread(pgembed.start_or_join, settings.data_dir,
                                                           stop_adopted=stop_adopted)
            log.info("embedded PostgreSQL at %s (data in %s)", app[keys.DSN], settings.data_dir.resolve() / "pg")
        conn = await db.connect(app[keys.DSN], timeout=settings.db_timeout)
        try:
            applied = await migrate.migrate(conn)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
        finally:
            await conn.close()
        if owned is None:
            yield
            return
        app[keys.FATAL] = []

        def give_up(message: str) -> None:
            app[keys.FATAL].append(message)
            signal.raise_signal(signal.SIGTERM)

        watch = pgwatch.Watch(owned, app[keys.COMPONENTS], give_up)
        async with tasks.running(f"{pgwatch.NAME}-watch", watch.run, app[keys.COMPONENTS]):
            yield
        await asyncio.to_thread(owned.stop)

    return database


database = database_context(stop_adopted=True)


async def event_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await db.create_pool(app[keys.DSN], max_size=settings.db_pool_size, timeout=settings.db_timeout)
    notify = notifier.Notifier(app[keys.DSN], connect_timeout=settings.db_timeout)
    es = store.EventStore(pool, notify, timeout=settings.db_timeout,
                          max_batch_events=settings.max_batch_events)
    app[keys.STORE] = es
    registry = app[keys.COMPONENTS]
    # The probe's first round before serving, so readiness is known from the first request on.
    db_probe = app[keys.PROBE] = probe.Probe(app[keys.DSN], registry, timeout=settings.db_timeout)
    await db_probe.check()
    async with (tasks.running("notifier", notify.run, registry),
                tasks.running("writer", es.writer.run, registry),
                tasks.running("database-probe", db_probe.run, registry)):
        yield
    try:
        await asyncio.wait_for(pool.close(), 5)
    except TimeoutError:
        pool.terminate()


async def target_index(app: web.Application) -> AsyncIterator[None]:
    """The commands' target index (projections/targetindex.py), in a process that serves the API
    (after the event store): the projector's and the applier's processes decide no command."""
    app[keys.TARGETS] = index = targetindex.Index(app[keys.SETTINGS].db_timeout)
    yield
    await index.close()


async def projection(app: web.Application) -> AsyncIterator[None]:
    """The projector (when this process runs it) and the progress that reads wait on (api/reads.py).

    The progress also follows a projector in another process (LISTEN), so reads wait correctly in
    a process without one, or whose projector stands by while another holds the projection lock.
    """
    settings = app[keys.SETTINGS]
    tracker = progress.Progress()
    app[keys.PROGRESS] = tracker
    app[keys.STREAM_LOCKS] = stream_locks.StreamLocks()
    follower = functools.partial(tracker.follow, app[keys.DSN], connect_timeout=settings.db_timeout)
    async with contextlib.AsyncExitStack() as stack:
        registry = app[keys.COMPONENTS]
        await stack.enter_async_context(tasks.running("projection-progress", follower, registry))
        if settings.projector:
            projector = runner.Projector(app[keys.DSN], store=app[keys.STORE], progress_=tracker,
                                         connect_timeout=settings.db_timeout, registry=registry)
            app[keys.PROJECTOR] = projector
            await stack.enter_async_context(tasks.running(runner.NAME, projector.run, registry))
        yield


async def credentials(app: web.Application) -> AsyncIterator[None]:
    """Polls the operator's credentials file so that a change reaches the applier without waiting
    for work (registration and the applier also check it whenever they read it)."""
    watched = app[keys.CREDENTIALS]

    async def poll() -> None:
        while True:
            await asyncio.sleep(CREDENTIALS_POLL_SECONDS)
            watched.refresh()

    async with tasks.running("credentials-file", poll, app[keys.COMPONENTS]):
        yield


async def applier(app: web.Application) -> AsyncIterator[None]:
    """The applier (handlers/applier.py), when this process runs it (``settings.applier``)."""
    settings = app[keys.SETTINGS]
    if not settings.applier:
        yield
        return
    # Imported here: the Kubernetes client costs a process some 60 MB and 2 s to load, and of the
    # processes of a multi-process ``ledger serve`` only the applier's needs it.
    from handlers import applier as applier_mod

    runner_ = applier_mod.Applier(app[keys.STORE], app[keys.DSN], settings, app[keys.CREDENTIALS],
                                  registry=app[keys.COMPONENTS])
    app[keys.APPLIER] = runner_
    async with tasks.running("applier", runner_.run, app[keys.COMPONENTS]):
        yield
