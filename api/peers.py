"""The other processes of a multi-process ``ledger serve``, as the API process sees them.

Why: by default the projector and the applier run in processes of their own (cli/supervisor.py),
so the API's registry no longer holds them; ``/readyz`` and ``/metrics`` must still tell the truth
about them, and about the supervisor that owns the embedded PostgreSQL and restarts the others.

Decisions:

- **A small local channel: loopback HTTP.** The supervisor binds one listening socket per process
  on 127.0.0.1 (an ephemeral port) before it starts anything, hands the projector and the applier
  theirs (the same port across restarts), and serves its own. Each answers ``/readyz`` (its
  component registry, api/health.py) and ``/metrics``. The API process is told the base URLs at
  start by the supervisor (cli/roles.py), never by a request.
- **A per-run secret.** Those ports accept only the bearer secret the supervisor made for this run
  (``guard``), so no other local user reads them; it never leaves the processes' memory and their
  stdin pipes.
- **Readiness asks every peer at once, with a budget.** A peer that does not answer within
  ``READY_BUDGET`` (a process restarting: the supervisor holds its socket, so connections wait in
  the backlog) is ``down`` under its role's name; a peer's components that are not up are merged
  in under their own names with ``"process": <role>`` (``<name>@<role>`` when the API process has a
  component of that name not up too). The supervisor itself reports ``<role>-process`` as
  ``restarting`` (with the exit status) while it waits to start a child again.
- **Metrics are merged.** ``/metrics`` of the API process appends every peer's samples with a
  ``process="<role>"`` label, family by family, so one scrape sees all processes and no family is
  exposed twice; a peer that does not answer within ``METRICS_BUDGET`` is left out and counted in
  ``ledger_peer_scrape_failed``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest, parser
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

READY_BUDGET: Final = 0.4
METRICS_BUDGET: Final = 2.0


class Peers:
    """The base URLs of the other processes by role, and the secret their ports accept."""

    def __init__(self, urls: dict[str, str], secret: str) -> None:
        self.urls = dict(urls)
        self.secret = secret
        self.session: aiohttp.ClientSession | None = None
        self.scrape_failed = 0

    async def _get(self, role: str, path: str, budget: float) -> tuple[int, bytes]:
        assert self.session is not None
        async with self.session.get(self.urls[role] + path, timeout=aiohttp.ClientTimeout(total=budget),
                                    headers={"Authorization": f"Bearer {self.secret}"}) as resp:
            return resp.status, await resp.read()

    async def not_ready(self) -> dict[str, dict[str, Any]]:
        """Every component of a peer that is not up, and every peer that does not answer."""
        found: dict[str, dict[str, Any]] = {}
        answers = await asyncio.gather(*(self._readyz(role) for role in self.urls))
        for role, entries in zip(self.urls, answers, strict=True):
            for name, entry in entries.items():
                found[name if name not in found else f"{name}@{role}"] = {**entry, "process": role}
        return found

    async def _readyz(self, role: str) -> dict[str, dict[str, Any]]:
        try:
            _, body = await self._get(role, "/readyz", READY_BUDGET)
            entries = msgspec.json.decode(body)["not_ready"]
            return {str(name): dict(entry) for name, entry in entries.items()}
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError, KeyError, TypeError, AttributeError) as exc:
            why = f"no answer within {READY_BUDGET} s" if isinstance(exc, TimeoutError) else str(exc)
            return {role: {"status": "down", "reason": f"the {role} process does not answer its status "
                                                         f"port ({why or type(exc).__name__})"}}

    async def metrics(self) -> list[tuple[str, str]]:
        """Each answering peer's exposition text, by role."""
        async def one(role: str) -> tuple[str, str] | None:
            try:
                status, body = await self._get(role, "/metrics", METRICS_BUDGET)
            except (aiohttp.ClientError, TimeoutError):
                status, body = 0, b""
            if status != 200:
                self.scrape_failed += 1
                return None
            return role, body.decode()

        return [found for found in await asyncio.gather(*(one(role) for role in self.urls)) if found is not None]


PEERS = web.AppKey("peers", Peers)


def install(app: web.Application, urls: dict[str, str], secret: str) -> None:
    """Make ``app`` (the API process's) answer for the peers at ``urls``."""
    app[PEERS] = Peers(urls, secret)
    app.cleanup_ctx.append(_session)


async def _session(app: web.Application) -> AsyncIterator[None]:
    peers = app[PEERS]
    peers.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        yield
    finally:
        await peers.session.close()


async def not_ready(app: web.Application) -> dict[str, dict[str, Any]]:
    peers = app.get(PEERS)
    return await peers.not_ready() if peers is not None else {}


async def merged_metrics(app: web.Application, local: bytes) -> bytes:
    """``local`` exposition text with every peer's samples appended, labelled with its role."""
    peers = app.get(PEERS)
    if peers is None:
        return local
    families: dict[str, Metric] = {}
    for family in parser.text_string_to_metric_families(local.decode()):
        families[family.name] = family
    for role, text in await peers.metrics():
        for family in parser.text_string_to_metric_families(text):
            into = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, "process": role}, sample.value, sample.timestamp)
    failed = Metric("ledger_peer_scrape_failed", "Scrapes of another ledger process's metrics that failed "
                    "(not answering, restarting)", "counter")
    failed.add_sample("ledger_peer_scrape_failed_total", {}, peers.scrape_failed)
    families[failed.name] = failed
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def guard(secret: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware of a status port: only the run's secret gets an answer (401 otherwise)."""
    expected = f"Bearer {secret}".encode()

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401,
                                     content_type="application/problem+json")
        return await handler(request)

    return middleware

