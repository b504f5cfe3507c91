"""Request ids and the access log: one line per request, and the count of requests per route.

Decisions:

- **A request id for every request.** ``X-Request-Id`` is taken when it is 1 to 128 characters of
  ``A-Z a-z 0-9 . _ : / + = @ -`` (UUIDs, trace ids, base64 ids), else (absent, too long, other
  characters: it would be copied into the log and the events) a new one is made: this process's
  random prefix and a counter, unique without a system call per request. It is returned in the
  response's ``X-Request-Id`` and recorded as ``request_id`` in the metadata of every event the
  request writes (api/envelope.py), so a line of the access log leads to the events and back.
- **One line per request**, logger ``api.access`` at INFO, written when the handler is done (for a
  stream: when it ends): ``request_id``, ``actor`` (the token's name), ``method``, ``route`` (the
  route's template, never the raw path: it names no ids and keeps the metric's labels bounded),
  ``status``, ``duration_seconds`` and ``positions`` (what the request appended; none for a read or
  an idempotent replay). No header, query or body is logged.
- **Counted without a middleware of its own.** The one middleware (api/problems.py) calls
  :meth:`Log.begin` and :meth:`Log.end`; ``end`` adds one to a plain dict entry per (route,
  method, status), which api/metrics.py reads at scrape time. The log record is built only when
  INFO is enabled.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Final

from aiohttp import web

log = logging.getLogger(__name__)

HEADER: Final = "X-Request-Id"
MAX_LENGTH: Final = 128
UNMATCHED: Final = "<unmatched>"
# What a request id may be (else a new one is made); api/operations.py declares it from this.
PATTERN: Final = rf"[A-Za-z0-9._:/+=@\-]{{1,{MAX_LENGTH}}}"
_VALID: Final = re.compile(PATTERN)

REQUEST_ID: Final = web.RequestKey("request_id", str)
WRITTEN: Final = web.RequestKey("positions_written", tuple)


def request_id(request: web.Request) -> str | None:
    """The id of ``request`` (None only for a request that never passed the middleware)."""
    return request.get(REQUEST_ID)


def valid(given: str | None) -> bool:
    return given is not None and _VALID.fullmatch(given) is not None


def wrote(request: web.Request, positions: tuple[int, ...]) -> None:
    """``request`` appended the events at ``positions`` (for its access-log line)."""
    request[WRITTEN] = tuple(request.get(WRITTEN, ())) + tuple(positions)


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


class Log:
    """The access log and the request counts of one app."""

    def __init__(self, actor: Callable[[web.Request], str | None]) -> None:
        self._actor = actor
        # A new request id: this process's random prefix and a counter (unique without a system
        # call per request; a request id is a correlation key, not a secret).
        self._prefix = uuid.uuid4().hex[:16]
        self._made = itertools.count(1)
        # (route, method, status) -> requests answered
        self.requests: dict[tuple[str, str, int], int] = {}

    def begin(self, request: web.Request) -> str:
        """Give ``request`` its id; returns it."""
        given = request.headers.get(HEADER)
        rid = given if given is not None and _VALID.fullmatch(given) is not None else self._new_id()
        request[REQUEST_ID] = rid
        return rid

    def _new_id(self) -> str:
        return f"{self._prefix}-{next(self._made):x}"

    def end(self, request: web.Request, status: int, started: float) -> None:
        route = route_of(request)
        key = (route, request.method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if log.isEnabledFor(logging.INFO):
            duration = time.perf_counter() - started
            log.info("%s %s %d", request.method, route, status, extra={
                "request_id": request.get(REQUEST_ID), "actor": self._actor(request),
                "method": request.method, "route": route, "status": status,
                "duration_seconds": round(duration, 6), "positions": list(request.get(WRITTEN, ())),
            })


LOG: Final = web.AppKey("access_log", Log)
