"""The supervisor's status port: ``/healthz``, ``/readyz`` and ``/metrics`` of its component registry.

Why not aiohttp: the supervisor of a multi-process ``ledger serve`` only starts and watches
processes (and the embedded PostgreSQL), and it is one of four interpreters the service keeps
resident; loading aiohttp, the API and the database driver there cost about 25 MB of RSS for three
routes that only the API process asks, a few times a second at most. The standard library's
threading HTTP server answers them from a thread of its own, on the socket the supervisor bound
before anything started (api/peers.py says how the API process uses it).

Decisions:

- **Answers are read on the event loop.** The registry is changed by the supervisor's tasks; the
  server thread asks the loop for a snapshot (``run_coroutine_threadsafe``), so it never reads a
  dictionary while it changes. A loop that does not answer within ``SNAPSHOT_BUDGET`` gets 503.
- **The run's secret or 401**, compared in constant time, as api/peers.py's ``guard`` does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import http.server
import json
import logging
import socket
import threading
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from api import componentmetrics
from ledger import components

log = logging.getLogger(__name__)
SNAPSHOT_BUDGET: Final = 1.0
IDLE_TIMEOUT: Final = 60.0
CONTENT_TYPE: Final = "text/plain; version=0.0.4"


class _Families(Collector):
    def __init__(self, registry: components.Registry) -> None:
        self._registry = registry

    def collect(self) -> Any:
        return componentmetrics.families(self._registry)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("status port: a request from %s failed", client_address, exc_info=True)


class StatusServer:
    """Serves the registry's status on ``sock`` from a daemon thread until ``close``."""

    def __init__(self, sock: socket.socket, registry: components.Registry, secret: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._registry = registry
        self._loop = loop
        self._expected = f"Bearer {secret}".encode()
        self._metrics = CollectorRegistry(auto_describe=False)
        self._metrics.register(_Families(registry))
        self._server = _Server(sock.getsockname()[:2], self._handler(), bind_and_activate=False)
        self._server.socket.close()
        self._server.socket = sock
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-port", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    async def _snapshot(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            down = self._registry.not_ready()
            body = {"status": "not ready" if down else "ready", "not_ready": down}
            return 503 if down else 200, "application/json", json.dumps(body).encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE, generate_latest(self._metrics)
        return 404, "application/problem+json", b'{"title":"Not Found","status":404}'

    def answer(self, path: str, authorization: str) -> tuple[int, str, bytes]:
        if not hmac.compare_digest(authorization.encode(), self._expected):
            return 401, "application/problem+json", b'{"title":"Unauthorized","status":401}'
        try:
            return asyncio.run_coroutine_threadsafe(self._snapshot(path), self._loop).result(SNAPSHOT_BUDGET)
        except (concurrent.futures.TimeoutError, RuntimeError):
            return 503, "application/problem+json", b'{"title":"Service Unavailable","status":503}'

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        status = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = IDLE_TIMEOUT

            def do_GET(self) -> None:
                code, content_type, body = status.answer(self.path.split("?", 1)[0],
                                                         self.headers.get("Authorization", ""))
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the API process's own access log is the one that matters

        return Handler
