"""Every route of the application through a database outage: PostgreSQL stopped, then frozen.

The walk is generated from ``app.router.routes()``, so a new route is walked without anyone
remembering to add it. Every route that needs the database answers 503 with Retry-After as
problem+json within ``db_timeout`` + 1 s (a client timeout enforces the bound), never 500 and never
a hang; afterwards the service recovers by itself and the same walk answers without a 5xx.

The service runs as ``ledger serve`` runs it (projector and applier on), on a PostgreSQL server of
this test's own, so stopping it disturbs no other test. "Frozen" means every process of that
server stopped with SIGSTOP (the postmaster and its backends): connections are accepted by the
kernel and then nothing answers, as with a hung server or a partitioned network. Stopping only
the postmaster would leave the pool's open backends serving, which is no outage at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from api import app as app_mod
from api import keys, policy
from ledger import pgembed
from ledger import settings as settings_mod
from projections import runner
from tests import credfiles, pgfixtures, servers

DB_TIMEOUT: Final = 1.0
RETRY_AFTER: Final = 3
# Routes whose reads (GET, HEAD) answer from memory alone, so an outage does not change their
# answer. The walk checks that this list is accurate: each answers 200 while PostgreSQL is down,
# every other route and method 503.
NO_DATABASE: Final = {
    "/healthz": "liveness: the process is up and serving, whatever PostgreSQL does",
    "/metrics": "counters kept in memory (the notifier's head, the writer's statistics); a scrape "
                "during an outage is when they matter most",
    "/v1/tokens": "the token table every request is authenticated against is in memory",
    "/v1/tokens/{name}": "the token table every request is authenticated against is in memory",
    "/openapi.json": "generated from the application's routes and Structs, in memory",
    "/api": "the reference page, shipped in the package",
    "/api/assets/{asset}": "the reference page's script and style sheet, shipped in the package",
    "/signin": "the web UI's sign-in page: a form, and the token table it checks against is in memory",
    "/ui/assets/{asset}": "the web UI's scripts and style sheet, shipped in the package",
}
# Writes that need no database either: signing out of the web UI without a session (this walk sends
# a bearer header, no cookie) has nothing to forget (and lands on the sign-in page).
NO_DATABASE_WRITES: Final = {("POST", "/signout")}


class Form(dict[str, str]):
    """A body sent as an HTML form (the web UI's pages), not as JSON."""

# Readiness reports the outage rather than failing on it: 503 with its checks (not problem+json),
# and within 1 s whatever the database does, since a Kubernetes probe times out at 1 s by default.
READINESS: Final = "/readyz"
READINESS_TIMEOUT: Final = 1.0

DEPLOYMENT: Final = "web"
TARGET: Final = "edge-1"
CONFIG_MAP: Final = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "default"},
                     "data": {"a": "1"}}
PARAMS: Final = {"stream": f"deployment-{DEPLOYMENT}", "number": "1", "asset": "reference.js"}
# Bodies valid enough to get past validation to the database; keyed by (method, route).
BODIES: Final[dict[tuple[str, str], Any]] = {
    ("POST", "/v1/streams/{stream}/events"): {
        "events": [{"type": "DeploymentPaused", "data": {"deployment": DEPLOYMENT, "reason": "outage"}}]},
    ("PUT", "/v1/targets/{name}"): {"labels": {"env": "edge"}, "credentials": "unreachable"},
    ("POST", "/v1/deployments/{name}/revisions"): {"manifests": [CONFIG_MAP], "selector": "env=none"},
    ("POST", "/v1/deployments/{name}/rollback"): {"to_revision": 1},
    ("POST", "/v1/deployments/{name}/pause"): {"reason": "outage test"},
    ("POST", "/v1/deployments/{name}/resume"): {"reason": "outage test"},
    ("POST", "/v1/deployments/{name}/approve"): {"wave": "a", "reason": "outage test"},
    ("POST", "/v1/deployments/{name}/promote"): {"wave": "b"},
    ("POST", "/v1/deployments/{name}/halt"): {"reason": "outage test"},
    ("POST", "/v1/tokens"): {"name": "outage", "role": "viewer"},
    ("PUT", "/v1/freezes/{name}"): {"selector": "env=none", "reason": "outage test", "schedule": {
        "cron": "0 22 * * FRI", "duration_seconds": 3600, "time_zone": "Europe/Berlin"}},
    # The web UI's forms (authenticated by the bearer header, so no CSRF token is needed).
    ("POST", "/signin"): Form(token=servers.ADMIN_TOKEN),
    ("POST", "/signout"): Form(),
    ("POST", "/deployments/{name}/rollback"): Form(to_revision="1", reason="outage test"),
    ("POST", "/deployments/{name}/pause"): Form(reason="outage test"),
    ("POST", "/deployments/{name}/resume"): Form(reason="outage test"),
    ("POST", "/deployments/{name}/approve"): Form(wave="a", reason="outage test"),
    ("POST", "/deployments/{name}/promote"): Form(wave="b", reason="outage test"),
    ("POST", "/deployments/{name}/halt"): Form(reason="outage test"),
}
LIVE: Final = "/v1/feed/live"


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    path: str
    body: Any

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _path(route: str) -> str:
    params = dict(PARAMS, name=TARGET if route.startswith(("/v1/targets/", "/targets/")) else DEPLOYMENT,
                  asset="app.css" if route.startswith("/ui/") else PARAMS["asset"])
    return route.format(**params)


def walk(app: web.Application) -> list[Call]:
    """Every method and path the router serves, with path parameters and bodies filled in."""
    calls = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        canonical = route.resource.canonical if route.resource is not None else ""
        if "path" not in info and "formatter" not in info:
            raise AssertionError(f"{route.method} {canonical}: a route kind this walk cannot fill in")
        calls.append(Call(route.method, canonical, _path(canonical), BODIES.get((route.method, canonical))))
    writes = {(c.method, c.route) for c in calls if c.method in ("POST", "PUT")}
    assert writes <= set(BODIES), f"write routes without a body in this test: {writes - set(BODIES)}"
    return calls


@pytest.fixture
def private_pg() -> Iterator[pgembed.EmbeddedPostgres]:
    path = Path(tempfile.mkdtemp(prefix="ledger-test-pg-"))
    server = pgfixtures.private_server(path / "pg")
    server.start()
    try:
        yield server
    finally:
        _signal_all(server, signal.SIGCONT)
        server.destroy()
        shutil.rmtree(path, ignore_errors=True)


def _signal_all(server: pgembed.EmbeddedPostgres, sig: signal.Signals) -> None:
    with contextlib.suppress(FileNotFoundError, IndexError, ValueError):
        for pid in pgfixtures.processes(server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


@pytest.fixture
async def client(private_pg, aiohttp_client, tmp_path) -> AsyncIterator[Any]:
    credentials = credfiles.write(tmp_path, {"unreachable": {"server": "https://127.0.0.1:1", "anonymous": True}})
    settings = settings_mod.Settings(
        database_url=private_pg.url(), data_dir=tmp_path / "data", db_timeout=DB_TIMEOUT,
        retry_after=RETRY_AFTER, projector=True, applier=True, claim_interval=0.2,
        admin_token=servers.ADMIN_TOKEN, credentials=credentials,
        # The walk sends every route at once with one token; per-client limits have their own tests.
        client_expensive_limit=1000, client_stream_limit=1000)
    client = await aiohttp_client(app_mod.make_app(settings))
    yield client
    _signal_all(private_pg, signal.SIGCONT)  # the app's cleanup needs its database answering


async def _seed(client) -> None:
    """Something for every route to find, so that after the outage they answer 2xx, not only 404."""
    resp = await client.put(f"/v1/targets/{TARGET}", json={"labels": {"env": "edge"}, "credentials": "unreachable"})
    assert resp.status == 201, await resp.text()
    resp = await client.post(f"/v1/deployments/{DEPLOYMENT}/revisions",
                             json={"manifests": [CONFIG_MAP], "selector": "env=none"})
    assert resp.status == 201, await resp.text()
    resp = await client.post("/v1/tokens", json={"name": DEPLOYMENT, "role": "viewer"})
    assert resp.status == 201, await resp.text()
    await _until_ready(client)


async def _until_ready(client, seconds: float = 60.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                resp = await client.get(READINESS, timeout=aiohttp.ClientTimeout(total=READINESS_TIMEOUT))
                if resp.status == 200:
                    return
            await asyncio.sleep(0.2)


async def _send(client, call: Call, limit: float) -> tuple[int, dict[str, str], bytes]:
    """One request under a client timeout; an SSE stream is read up to its first block only."""
    try:
        body = {"data": dict(call.body)} if isinstance(call.body, Form) else {"json": call.body}
        async with client.request(call.method, call.path, **body,
                                  timeout=aiohttp.ClientTimeout(total=limit)) as resp:
            if call.method != "HEAD" and resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                body = await resp.content.readuntil(b"\n\n")
            else:
                body = await resp.read()
            return resp.status, dict(resp.headers), body
    except TimeoutError:
        raise AssertionError(f"{call}: no answer within {limit:g} s") from None


async def _during_outage(client) -> list[str]:
    """Walk every route at once; returns what is wrong, one line per route."""
    calls = walk(client.app)
    answers = await asyncio.gather(*(_send(client, c, DB_TIMEOUT + 1) for c in calls), return_exceptions=True)
    wrong = []
    # Readiness within a probe's 1 s, asked alone as a kubelet asks it: in the walk above it shares
    # this test's one event loop with every other route's request and client, which under a loaded
    # machine measured the test's own contention rather than the service.
    readiness = next(c for c in calls if c.route == READINESS and c.method == "GET")
    try:
        await _send(client, readiness, READINESS_TIMEOUT)
    except AssertionError as exc:
        wrong.append(str(exc))
    for call, answer in zip(calls, answers, strict=True):
        if isinstance(answer, BaseException):
            wrong.append(f"{call}: {answer}")
            continue
        status, headers, body = answer
        if (call.route in NO_DATABASE and call.method in ("GET", "HEAD")) or (
                (call.method, call.route) in NO_DATABASE_WRITES):
            if status != 200:
                wrong.append(f"{call}: {status} (listed as needing no database) {body[:200]!r}")
            continue
        if status != 503:
            wrong.append(f"{call}: {status}, expected 503: {body[:300]!r}")
            continue
        if str(client.app[keys.SETTINGS].database_url).split("@")[-1].split("/")[0].encode() in body:
            wrong.append(f"{call}: the answer names the database's address: {body[:300]!r}")
        if "Retry-After" not in headers:
            wrong.append(f"{call}: 503 without Retry-After")
        if call.route == READINESS:
            continue
        if policy.is_page(call.method, call.route):
            # A page of the web UI: an HTML error page saying so, with the same status and Retry-After.
            if not headers.get("Content-Type", "").startswith("text/html") or (
                    call.method != "HEAD" and b"503" not in body):
                wrong.append(f"{call}: a page's 503 should be an HTML error page: {body[:300]!r}")
            continue
        if not headers.get("Content-Type", "").startswith("application/problem+json"):
            wrong.append(f"{call}: 503 as {headers.get('Content-Type')}, expected application/problem+json")
        elif call.method != "HEAD" and json.loads(body).get("status") != 503:
            wrong.append(f"{call}: a problem body without status 503: {body[:300]!r}")
    return wrong


async def _after_outage(client) -> list[str]:
    await _until_ready(client)
    wrong = []
    for call in walk(client.app):
        status, _, body = await _send(client, call, 30)
        if status >= 500:
            wrong.append(f"{call}: {status} after the outage: {body[:300]!r}")
    return wrong


async def test_every_route_answers_503_while_postgres_is_stopped_and_recovers(client, private_pg):
    await _seed(client)
    await asyncio.to_thread(private_pg.stop, "fast")
    try:
        wrong = await _during_outage(client)
    finally:
        await asyncio.to_thread(private_pg.start)
    assert not wrong, "\n".join(wrong)
    after = await _after_outage(client)
    assert not after, "\n".join(after)


async def test_every_route_answers_503_while_postgres_is_frozen_and_recovers(client, private_pg):
    await _seed(client)
    with pgfixtures.frozen(private_pg):
        wrong = await _during_outage(client)
    assert not wrong, "\n".join(wrong)
    after = await _after_outage(client)
    assert not after, "\n".join(after)


def test_the_routes_listed_as_needing_no_database_exist(tmp_path):
    app = app_mod.make_app(settings_mod.Settings(data_dir=tmp_path))
    routes = {c.route for c in walk(app)}
    assert set(NO_DATABASE) | {READINESS, LIVE} <= routes


async def test_the_projector_takes_its_lock_again_after_a_database_restart_without_waiting_for_an_event(
        client, private_pg):
    # Found by the outage walk: an idle projector never noticed that its connection (and with it the
    # projection lock) died in the restart, reported itself up, and crashed on the next write instead.
    await _seed(client)
    await asyncio.to_thread(private_pg.stop, "fast")
    await asyncio.to_thread(private_pg.start)
    conn = await asyncpg.connect(private_pg.url())
    try:
        async with asyncio.timeout(60):
            while not await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND ((classid::bigint << 32) | objid::bigint) = $1", runner.LOCK):
                await asyncio.sleep(0.2)
    finally:
        await conn.close()
    await _until_ready(client)
