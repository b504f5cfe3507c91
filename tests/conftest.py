from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import asyncpg
import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestClient

from api import app as app_mod
from api import keys
from ledger import settings as settings_mod
from ledger import store as store_mod
from tests import credfiles, servers
from tests.pgfixtures import database_url, pg_admin_url  # noqa: F401 - fixtures


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test and fixture runs on uvloop, the loop ``ledger serve`` runs on (cli/serve.py),
    so the suite meets the same loop as production (its timers and handles differ from asyncio's)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def aiohttp_client(aiohttp_client):  # type: ignore[no-untyped-def]
    """pytest-aiohttp's client, sending the suite's admin token unless a test passes other headers,
    to the app served behind ledger serve's connection gate."""

    async def client(app, **kwargs):  # type: ignore[no-untyped-def]
        headers = {**servers.ADMIN_HEADERS, **(kwargs.pop("headers", None) or {})}
        if isinstance(app, web.Application) and keys.SETTINGS in app:
            app = servers.GatedTestServer(app)  # served as ledger serve serves it
        return await aiohttp_client(app, headers=headers, **kwargs)

    return client


@pytest.fixture(autouse=True)
def cli_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI, called in-process by tests, authenticates as the suite's admin (LEDGER_TOKEN)."""
    monkeypatch.setenv("LEDGER_TOKEN", servers.ADMIN_TOKEN)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> settings_mod.Settings:  # noqa: F811
    return settings_mod.Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        http_port=0,
        db_timeout=3.0,
        applier=False,
        projector=False,
        admin_token=servers.ADMIN_TOKEN,
        credentials=credfiles.ensure(tmp_path),
    )


@pytest.fixture
async def app(settings: settings_mod.Settings) -> web.Application:
    return app_mod.make_app(settings)


@pytest.fixture
async def client(database_url: str, aiohttp_client, app: web.Application) -> TestClient:  # type: ignore[no-untyped-def]  # noqa: F811
    # database_url first: fixtures tear down in reverse, so the app stops before its database is dropped.
    return await aiohttp_client(app)


@pytest.fixture
async def store(client: TestClient) -> store_mod.EventStore:
    return client.app[keys.STORE]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:  # noqa: F811
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory for a ``ledger serve`` data directory, outside pytest's basetemp: a concurrent
    pytest run makes /tmp/pytest-of-<user> private to its user, and the embedded PostgreSQL runs as
    another user when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix="ledger-test-serve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
