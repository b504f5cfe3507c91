"""Reading request bodies and query parameters: 415, 413, 400 and 422 with the field named."""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web

from api import problems

T = TypeVar("T")
# What the columns behind query integers hold: positions are bigint, versions and revisions int.
BIGINT_MAX: Final = 2**63 - 1
INT_MAX: Final = 2**31 - 1


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def read_raw(request: web.Request, *, allow: tuple[str, ...] = ()) -> bytes:
    if not (_is_json(request.content_type) or request.content_type in allow):
        accepted = ", ".join(("application/json", *allow))
        raise problems.Problem(415, "Unsupported media type",
                               f"Content-Type {request.content_type!r} is not accepted; send {accepted}",
                               field="Content-Type")
    return await request.read()


async def read_json(request: web.Request, kind: type[T]) -> T:
    body = await read_raw(request)
    return decode(body, kind)


def decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise problems.from_validation(exc) from exc
    except msgspec.DecodeError as exc:
        raise problems.Problem(400, "Malformed JSON", f"the body is not valid JSON: {exc}",
                               field="body") from exc


def query_int(request: web.Request, name: str, default: int, *, low: int = 0,
              high: int = BIGINT_MAX) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise problems.invalid(name, f"expected an integer, got {raw!r}") from exc
    if value < low or value > high:
        raise problems.invalid(name, f"must be between {low} and {high}, got {value}")
    return value


def query_list(request: web.Request, name: str) -> list[str] | None:
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]
    return values or None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json", headers=headers)
