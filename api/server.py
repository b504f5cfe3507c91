"""Serving the app: the HTTP server every ``ledger serve`` runs, with a cap on open client connections.

Why: twenty thousand idle connections took every file descriptor of the process; new clients could
not connect and asyncpg failed with ``EMFILE`` until they left. The cap keeps client connections
below the descriptor limit, with a reserve for what the service itself opens.

Decisions:

- **Counted at the protocol, refused at accept.** Each accepted connection's protocol (aiohttp's
  request handler) is wrapped by ``_Counted``; past ``max_connections`` open ones a new connection
  is answered ``503`` + ``Retry-After`` (problem+json, ``Connection: close``) and closed before
  aiohttp sees it. Connections already open, keep-alive ones included, are untouched, and so are the
  database's: they are not client connections.
- **The limit follows the descriptor limit.** At start the soft ``RLIMIT_NOFILE`` is raised to the
  hard one where the system lets it (``raise_fd_limit``); ``max_connections`` = 0 means that limit
  minus ``fd_reserve`` (database pools and dedicated connections, the embedded PostgreSQL's
  clients, log and data files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from aiohttp import web

from api import keys
from ledger import settings as settings_mod

log = logging.getLogger(__name__)

_FLOOR = 16


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one where allowed; the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_limit(settings: settings_mod.Settings, fd_limit: int | None = None) -> int:
    """``max_connections``, or (0) the descriptor limit minus ``fd_reserve``, at least 16."""
    if settings.max_connections:
        return settings.max_connections
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(_FLOOR, fd_limit - settings.fd_reserve)


class Gate:
    """How many client connections are open, and the most that may be."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        body = msgspec.json.encode({
            "type": "about:blank", "title": "Service unavailable", "status": 503,
            "detail": f"the server has {limit} client connections open, its limit; retry after {retry_after} s"})
        self._refusal = (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
            b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (retry_after, len(body), body))

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Counted(self, inner)

    def refuse(self, transport: asyncio.BaseTransport) -> None:
        self.refused += 1
        # uvloop's transports are not asyncio.WriteTransport subclasses; every stream transport writes.
        write = getattr(transport, "write", None)
        if write is not None:
            write(self._refusal)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted by the gate (or the refusal instead of it)."""

    __slots__ = ("_counted", "_factory", "_gate", "_inner")

    def __init__(self, gate: Gate, factory: Callable[[], asyncio.Protocol]) -> None:
        self._gate = gate
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._gate.open >= self._gate.limit:
            self._gate.refuse(transport)
            return
        self._gate.open += 1
        self._counted = True
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._gate.open -= 1
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class Runner(web.AppRunner):
    """aiohttp's AppRunner whose protocol factory passes every accepted connection through the
    gate; any aiohttp site (TCPSite, SockSite, the test server's) serves through it."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        settings = app[keys.SETTINGS]
        self.gate = app[GATE] = Gate(connection_limit(settings), settings.retry_after)
        self._gated: Callable[[], asyncio.Protocol] | None = None

    @property
    def server(self) -> Callable[[], asyncio.Protocol] | None:  # type: ignore[override]
        inner = super().server
        if inner is None:
            return None
        if self._gated is None:
            self._gated = self.gate.factory(inner)
        return self._gated


GATE = web.AppKey("connection_gate", Gate)


@contextlib.asynccontextmanager
async def serving(app: web.Application, sock: socket.socket, *, tls: ssl.SSLContext | None = None,
                  handle_signals: bool = False, **runner_options: Any) -> AsyncIterator[web.SockSite]:
    """``app`` served on the bound socket ``sock`` behind the connection gate, until the block ends."""
    runner = Runner(app, handle_signals=handle_signals, **runner_options)
    await runner.setup()
    try:
        site = web.SockSite(runner, sock, ssl_context=tls)
        await site.start()
        log.info("accepting up to %d client connections", runner.gate.limit)
        yield site
    finally:
        await runner.cleanup()
