"""A real PostgreSQL for the suite: one server per test session (embedded, or the one named by
LEDGER_TEST_DATABASE_URL), one fresh database per test cloned from a migrated template."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from ledger import migrate, pgembed

FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
TEMPLATE = "ledger_template"


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def _make_template(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(_with_db(admin_url, TEMPLATE))
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    external = os.environ.get("LEDGER_TEST_DATABASE_URL")
    server: pgembed.EmbeddedPostgres | None = None
    if external:
        url = external
    else:
        # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, data dir included.
        server = pgembed.EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="ledger-test-pg-")) / "data",
                                          options=FAST)
        url = server.start()
    asyncio.run(_make_template(url))
    try:
        yield url
    finally:
        if server is not None:
            server.destroy()
            shutil.rmtree(server.pgdata.parent, ignore_errors=True)


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """A new migrated, empty database cloned from the template; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await conn.close()
    try:
        yield _with_db(admin_url, name)
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


@pytest.fixture
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    async with fresh_database(pg_admin_url) as url:
        yield url


def private_server(path: Path) -> pgembed.EmbeddedPostgres:
    """A server of a test's own, for tests that stop or kill PostgreSQL."""
    return pgembed.EmbeddedPostgres(path, options=FAST)


def processes(server: pgembed.EmbeddedPostgres) -> list[int]:
    """The postmaster of ``server`` and every process it started (backends, checkpointer, ...)."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *map(int, children)]


@contextlib.contextmanager
def frozen(server: pgembed.EmbeddedPostgres) -> Iterator[None]:
    """``server`` frozen (SIGSTOP to all its processes): connections are accepted, nothing answers."""
    pids = processes(server)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
