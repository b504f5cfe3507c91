"""Reading request bodies and query parameters: 415, 413, 400 and 422 with the field named."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from api import problems
from ledger import jsontext

T = TypeVar("T")


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def read_raw(request: web.Request, *, allow: tuple[str, ...] = ()) -> bytes:
    if not (_is_json(request.content_type) or request.content_type in allow):
        accepted = ", ".join(("application/json", *allow))
        raise problems.Problem(415, "Unsupported media type",
                               f"Content-Type {request.content_type!r} is not accepted; send {accepted}",
                               field="Content-Type")
    return await request.read()


async def read_json(request: web.Request, kind: type[T], *, free_form: bool = False) -> T:
    body = await read_raw(request)
    return decode(body, kind, free_form=free_form)


def decode(body: bytes, kind: type[T], *, free_form: bool = False) -> T:
    """``body`` as ``kind``; the problems a decoder hides are looked for in the text (ledger/jsontext.py).

    ``free_form`` bodies (manifests) also refuse a key repeated in one object, which a decoder
    would silently resolve to the last value.
    """
    try:
        value = msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise problems.from_validation(exc) from exc
    except msgspec.DecodeError as exc:
        raise problems.Problem(400, "Malformed JSON", f"the body is not valid JSON: {exc}",
                               field="body") from exc
    except RecursionError as exc:
        raise too_deep(body, "$") from exc
    check_text(body, "$", duplicates=free_form)
    return value


def too_deep(text: bytes, root: str) -> problems.Problem:
    """The problem for JSON a decoder could not descend into, naming where it passes the limit."""
    found = jsontext.scan(text, root=root, nul=False)
    if found is None:
        return problems.invalid(root, f"is nested deeper than {jsontext.MAX_DEPTH} levels")
    return problems.invalid(found.path, found.reason)


def check_text(text: bytes, root: str, *, duplicates: bool = False) -> None:
    """Refuse decoded JSON ``text`` that nests too deep, holds a NUL (jsonb cannot store one) or,
    with ``duplicates``, repeats a key; cheap unless the text gives a reason to look."""
    if duplicates or jsontext.NUL_ESCAPE in text:
        found = jsontext.find(text, root=root, duplicates=duplicates)
        if found is not None:
            raise problems.invalid(found.path, found.reason)


def query_text(request: web.Request, name: str, default: str | None = None) -> str | None:
    """A text query parameter that will be stored: PostgreSQL cannot store a NUL character."""
    value = request.query.get(name, default)
    if value is not None and "\x00" in value:
        raise problems.invalid(name, "text must not contain the NUL character (%00)")
    return value


def query_list(request: web.Request, name: str) -> list[str] | None:
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]
    return values or None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json", headers=headers)
