"""RFC 9457 problem details: every error leaves the API as application/problem+json.

Handlers raise ``Problem`` (or a ledger error); the middleware turns it into a response that names
the field and the reason. Tracebacks never reach a client. A page of the web UI (a ``page`` row of
api/policy.py) gets the same problem as an HTML error page instead, rendered by the UI's
``PAGES`` hook, with the same status and headers (Retry-After on a 503).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import msgspec
from aiohttp import web

from api import access, policy
from ledger import errors

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/problem+json"
_AT = re.compile(r" - at `(\$[^`]*)`$")


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra


class PageRenderer(Protocol):
    def __call__(self, request: web.Request, problem: Problem) -> web.Response: ...


# How a page of the web UI shows a problem (api/ui/ installs it).
PAGES: Final = web.AppKey("page_problems", PageRenderer)


def invalid(field: str, reason: str, status: int = 422) -> Problem:
    return Problem(status, "Invalid request", f"{field}: {reason}", field=field,
                   errors=[{"field": field, "reason": reason}])


def from_validation(exc: msgspec.ValidationError, prefix: str = "$") -> Problem:
    """Turn msgspec's "<reason> - at `$.path`" into a problem naming ``prefix`` + path."""
    message = str(exc)
    match = _AT.search(message)
    path = match.group(1) if match else "$"
    reason = message[: match.start()] if match else message
    return invalid(prefix + path[1:], reason)


def response(problem: Problem, instance: str) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
    }
    if problem.field is not None:
        body["field"] = problem.field
    body.update(problem.extra)
    return web.Response(
        status=problem.status,
        body=msgspec.json.encode(body),
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


def translate(exc: BaseException, retry_after: int) -> Problem | None:
    match exc:
        case Problem():
            return exc
        case errors.WrongExpectedVersion():
            return Problem(409, "Wrong expected version", str(exc), field="expected_version",
                           stream=exc.stream, expected_version=exc.expected, actual_version=exc.actual)
        case errors.EventIdConflict():
            return Problem(409, "Event id conflict", str(exc), field="id",
                           event_id=str(exc.event_id), stream=exc.stream, position=exc.position)
        case errors.StreamNotFound():
            return Problem(404, "Stream not found", str(exc), stream=exc.stream)
        case errors.InvalidEvent():
            return Problem(422, "Invalid event", exc.detail, field="events")
        case errors.StoreUnavailable():
            # The kind of failure only: the driver's message names the database's address.
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "no answer"
            return Problem(503, "Service unavailable",
                           f"the event store is unavailable ({cause}); retry after {retry_after} s",
                           headers={"Retry-After": str(retry_after)})
        case errors.Undecodable():
            # The log is intact but this version cannot read it (projections/undecodable.py): the
            # answer waits for an upgrade or a repair, as readiness says.
            return Problem(503, "Event not readable", f"{exc}; the state past position {exc.position - 1} "
                           f"cannot be told until it is repaired or this service upgraded",
                           headers={"Retry-After": str(retry_after)}, position=exc.position,
                           event_type=exc.type, stream=exc.stream, reason=exc.reason)
        case web.HTTPRequestEntityTooLarge():
            return Problem(413, "Request body too large", exc.text or "request body over the limit",
                           field="body")
        case web.HTTPException() if exc.status >= 400:
            return Problem(exc.status, exc.reason, exc.text or exc.reason,
                           headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"})
    return None


def _on_a_page(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and policy.is_page(request.method, resource.canonical)


def middleware(retry_after: int, admit: Callable[[web.Request], None] | None = None,
               access_log: access.Log | None = None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The one middleware: the request gets its id (api/access.py), ``admit`` (access control,
    api/auth.py) runs first, then the handler; whatever either raises leaves as problem+json, and
    the request is counted and logged once answered."""

    @web.middleware
    async def problem_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        rid = access_log.begin(request) if access_log is not None else None
        try:
            if admit is not None:
                admit(request)
            answer = await handler(request)
        except Exception as exc:
            problem = translate(exc, retry_after)
            if problem is None:
                if isinstance(exc, web.HTTPException):
                    if rid is not None and access_log is not None:
                        exc.headers[access.HEADER] = rid
                        access_log.end(request, exc.status, started)
                    raise
                log.exception("unhandled error on %s %s", request.method, request.path,
                              extra={"request_id": rid})
                problem = Problem(500, "Internal server error",
                                  "the server failed to handle this request; it has been logged")
            render = request.app.get(PAGES)
            if render is not None and _on_a_page(request):
                answer = render(request, problem)
            else:
                answer = response(problem, request.path)
        if rid is not None and access_log is not None:
            if not answer.prepared:
                answer.headers[access.HEADER] = rid
            access_log.end(request, answer.status, started)
        return answer

    return problem_middleware
