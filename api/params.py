"""The integer inputs of every route, in one table, bounded by what their columns hold.

A number from a query string, a path segment or a header ends up in a SQL parameter (positions are
``bigint``, stream versions and revisions ``int``), so one that the column cannot hold used to
reach the driver and come back as a 500. Every handler reads its integers through
:func:`integer` (or :func:`check` for a value it parsed itself, like ``If-Match``), which takes the
bounds from ``ROUTES``: a parameter a route does not declare is a programming error, so the table
cannot fall behind the handlers, and the test that walks every route
(tests/test_hostile_input.py) sends each declared parameter values beyond its bounds.

Decisions:

- Digits only (ASCII, an optional ``-``): ``int()`` would also accept ``1_000``, ``" 7 "`` and
  other scripts' digits, and raise on more than 4,300 digits. Longer than 20 characters is out of
  range without being converted.
- Out of range or not a number answers 422 naming the parameter; the value is echoed shortened.
- The one source of the bounds: the OpenAPI document (api/operations.py) states each parameter's
  from these ``Bound``s, and tests/test_openapi.py holds every route's documented integers to
  ``ROUTES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from aiohttp import web

from api import problems
from ledger import events

INT32_MAX: Final = events.INT32_MAX  # stream versions and revisions: the read models' int columns
INT64_MAX: Final = 2**63 - 1  # positions: bigint
_DIGITS: Final = re.compile(r"-?[0-9]{1,20}")
_LONG_DIGITS: Final = re.compile(r"-?[0-9]+")
_ECHO: Final = 40

Where = Literal["query", "path", "header"]


@dataclass(frozen=True)
class Bound:
    """The values a kind of number may take, and what it is called in messages."""

    low: int
    high: int
    what: str


@dataclass(frozen=True)
class Param:
    name: str
    where: Where
    bound: Bound


POSITION: Final = Bound(0, INT64_MAX, "a log position")
POSITION_FROM_1: Final = Bound(1, INT64_MAX, "a log position")
VERSION: Final = Bound(1, INT32_MAX, "a stream version")
EXPECTED_VERSION: Final = Bound(0, INT32_MAX, "a stream version")
REVISION: Final = Bound(1, INT32_MAX, "a revision number")
PAGE: Final = Bound(1, 1000, "a page size")
PAGE_NUMBER: Final = Bound(1, INT32_MAX, "a page number")
DEADLINE: Final = Bound(1, INT32_MAX, "a number of seconds")


def _query(name: str, bound: Bound) -> Param:
    return Param(name, "query", bound)


_MIN_POSITION: Final = _query("min_position", POSITION)
_IF_MATCH: Final = Param("If-Match", "header", EXPECTED_VERSION)
_READ_MODEL: Final = (_MIN_POSITION,)
_WRITE: Final = (_IF_MATCH,)

# (method, route path) -> the integers that route reads. Every route is listed, none or not.
ROUTES: Final[dict[tuple[str, str], tuple[Param, ...]]] = {
    ("GET", "/healthz"): (),
    ("GET", "/readyz"): (),
    ("GET", "/metrics"): (),
    ("GET", "/openapi.json"): (),
    ("GET", "/api"): (),
    ("GET", "/api/assets/{asset}"): (),
    ("POST", "/v1/streams/{stream}/events"): _WRITE,
    ("GET", "/v1/streams/{stream}"): (_query("from_version", VERSION), _query("limit", PAGE)),
    ("GET", "/v1/events"): (_query("after", POSITION), _query("limit", PAGE)),
    ("GET", "/v1/feed"): (_query("after", POSITION), _query("limit", PAGE), _query("until", POSITION)),
    ("GET", "/v1/feed/live"): (_query("after", POSITION), Param("Last-Event-ID", "header", POSITION)),
    ("GET", "/v1/verify"): (_query("from", POSITION_FROM_1), _query("to", POSITION_FROM_1)),
    ("GET", "/v1/digest"): (),
    ("PUT", "/v1/targets/{name}"): _WRITE,
    ("DELETE", "/v1/targets/{name}"): _WRITE,
    ("GET", "/v1/targets"): _READ_MODEL,
    ("GET", "/v1/targets/{name}"): _READ_MODEL,
    ("POST", "/v1/deployments/{name}/revisions"): (*_WRITE, _query("expected_version", EXPECTED_VERSION),
                                                   _query("progress_deadline_seconds", DEADLINE)),
    ("POST", "/v1/deployments/{name}/rollback"): _WRITE,
    ("POST", "/v1/deployments/{name}/pause"): _WRITE,
    ("POST", "/v1/deployments/{name}/resume"): _WRITE,
    ("POST", "/v1/deployments/{name}/approve"): _WRITE,
    ("POST", "/v1/deployments/{name}/promote"): _WRITE,
    ("POST", "/v1/deployments/{name}/halt"): _WRITE,
    ("GET", "/v1/deployments/{name}/rollout"): (),
    ("DELETE", "/v1/deployments/{name}"): _WRITE,
    ("GET", "/v1/deployments"): _READ_MODEL,
    ("GET", "/v1/deployments/{name}"): (*_READ_MODEL, _query("revision", REVISION)),
    ("GET", "/v1/deployments/{name}/revisions"): (
        _query("from_revision", REVISION), _query("limit", PAGE), _MIN_POSITION),
    ("GET", "/v1/deployments/{name}/revisions/{number}"): (Param("number", "path", REVISION), _MIN_POSITION),
    ("GET", "/v1/deployments/{name}/diff"): (_query("from", REVISION), _query("to", REVISION), _MIN_POSITION),
    ("GET", "/v1/state"): (_query("at", POSITION),),
    ("POST", "/v1/tokens"): (),
    ("GET", "/v1/tokens"): (),
    ("GET", "/v1/tokens/{name}"): (),
    ("DELETE", "/v1/tokens/{name}"): (),
    ("PUT", "/v1/freezes/{name}"): _WRITE,
    ("DELETE", "/v1/freezes/{name}"): _WRITE,
    ("GET", "/v1/freezes"): (),
    # The web UI (api/ui/): HTML pages; a bad integer gets an error page naming it.
    ("GET", "/"): (),
    ("GET", "/signin"): (),
    ("POST", "/signin"): (),
    ("POST", "/signout"): (),
    ("GET", "/ui/assets/{asset}"): (),
    ("GET", "/fleet"): (_query("page", PAGE_NUMBER), _MIN_POSITION),
    ("GET", "/fleet/matrix"): (_query("page", PAGE_NUMBER), _MIN_POSITION),
    ("GET", "/deployments/{name}"): (_query("from", REVISION), _query("to", REVISION), _query("page", PAGE_NUMBER),
                                     _query("recorded", POSITION_FROM_1), _MIN_POSITION),
    ("POST", "/deployments/{name}/rollback"): (),
    ("POST", "/deployments/{name}/pause"): (),
    ("POST", "/deployments/{name}/resume"): (),
    ("POST", "/deployments/{name}/approve"): (),
    ("POST", "/deployments/{name}/promote"): (),
    ("POST", "/deployments/{name}/halt"): (),
    ("GET", "/targets/{name}"): _READ_MODEL,
    ("GET", "/timeline"): (_query("before", POSITION_FROM_1),),
    ("GET", "/timeline/rows"): (_query("after", POSITION),),
    ("GET", "/audit"): (),
    ("GET", "/audit/digest"): (),
}


def route_key(request: web.Request) -> tuple[str, str]:
    route = request.match_info.route
    method = "GET" if route.method == "HEAD" else route.method
    resource = route.resource
    return method, resource.canonical if resource is not None else request.path


def declared(request: web.Request, name: str) -> Param:
    """The declaration of ``name`` for the request's route; undeclared is a programming error."""
    key = route_key(request)
    for param in ROUTES.get(key, ()):
        if param.name == name:
            return param
    raise LookupError(f"{key[0]} {key[1]} reads integer {name!r} without declaring it in api.params.ROUTES")


def echo(raw: str) -> str:
    return repr(raw if len(raw) <= _ECHO else raw[:_ECHO] + "…")


def parse(name: str, raw: str, bound: Bound) -> int:
    """``raw`` as an integer within ``bound``, or 422 naming ``name``."""
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        if _LONG_DIGITS.fullmatch(text):
            raise problems.invalid(name, f"must be between {bound.low} and {bound.high}, got a number "
                                         f"of {len(text)} characters")
        raise problems.invalid(name, f"expected {bound.what} (an integer), got {echo(raw)}")
    value = int(text)
    if not bound.low <= value <= bound.high:
        raise problems.invalid(name, f"must be between {bound.low} and {bound.high} ({bound.what}), "
                                     f"got {value}")
    return value


def value(request: web.Request, name: str, raw: str) -> int:
    """``raw``, taken from a header with a syntax of its own (``If-Match: "3"``), bounded as declared."""
    return parse(name, raw, declared(request, name).bound)


def raw_value(request: web.Request, param: Param) -> str | None:
    match param.where:
        case "query":
            return request.query.get(param.name)
        case "path":
            return request.match_info.get(param.name)
        case "header":
            return request.headers.get(param.name)


def integer(request: web.Request, name: str, default: int) -> int:
    """The declared integer ``name`` of this request, ``default`` when absent or empty."""
    param = declared(request, name)
    raw = raw_value(request, param)
    if raw is None or raw.strip() == "":
        return default
    return parse(name, raw, param.bound)


def optional(request: web.Request, name: str) -> int | None:
    param = declared(request, name)
    raw = raw_value(request, param)
    if raw is None or raw.strip() == "":
        return None
    return parse(name, raw, param.bound)
