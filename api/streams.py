"""Generic submission and reading of the log: ``/v1/streams/{stream}`` and ``/v1/events``."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any, Final, Literal

import msgspec
from aiohttp import web

from api import auth, bodies, keys, problems, wire
from ledger import events, ids, records, streams

# Event ids derived from an Idempotency-Key: the same key and stream always give the same ids, so
# a retried request is recognised by the store as a duplicate and answered with the first result.
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("6f1c1d2e-3b7a-5c55-9a51-6c6564676572")

routes = web.RouteTableDef()
# An escaped NUL (not an escaped backslash followed by "u0000"): jsonb cannot store it.
_NUL: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

ExpectedVersion = int | Literal["any", "no_stream", "exists"]
_YIELD_EVERY: Final = 64


class SubmittedEvent(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    data: msgspec.Raw
    id: uuid.UUID | None = None
    metadata: dict[str, Any] = {}


class AppendBody(msgspec.Struct, forbid_unknown_fields=True):
    events: list[SubmittedEvent]
    expected_version: ExpectedVersion | None = None


def stream_param(request: web.Request) -> str:
    name = request.match_info["stream"]
    try:
        return streams.validate(name)
    except streams.StreamNameError as exc:
        raise problems.invalid("stream", str(exc)) from exc


def expected_version(request: web.Request, body_value: ExpectedVersion | None,
                     default: records.ExpectedVersion = "any") -> records.ExpectedVersion:
    """From the body's ``expected_version`` or an ``If-Match: "N"`` header (both: they must agree)."""
    header = request.headers.get("If-Match")
    from_header: records.ExpectedVersion | None = None
    if header is not None:
        raw = header.strip().removeprefix("W/").strip('"')
        if raw == "*":
            from_header = "exists"
        else:
            try:
                from_header = int(raw)
            except ValueError as exc:
                raise problems.invalid("If-Match", f"expected a stream version like \"3\", got {header!r}") from exc
    if isinstance(body_value, int) and body_value < 0:
        raise problems.invalid("expected_version", "must be 0 or more, or any, no_stream, exists")
    if from_header is not None and body_value is not None and from_header != body_value:
        raise problems.invalid("If-Match", f"disagrees with expected_version {body_value!r}")
    chosen = from_header if from_header is not None else body_value
    if chosen == 0:
        return "no_stream"
    return default if chosen is None else chosen


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 255):
        raise problems.invalid("Idempotency-Key", "must be 1 to 255 characters")
    return key


def derived_id(stream: str, key: str, index: int) -> uuid.UUID:
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{stream}\n{key}\n{index}")


def metadata_for(request: web.Request, submitted: dict[str, Any], index: int,
                 cache: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Submitted metadata with actor (the token's name, api/auth.py), on_behalf_of (``X-Actor``),
    request id and client filled in from the request. A submitted actor other than the token's is
    refused: the audit trail's actor is never a client's claim."""
    if not submitted:
        # The usual case, without a Struct round trip: what the request says, None left out.
        if cache is not None and "default" in cache:
            return cache["default"]
        filled_in = {
            "actor": auth.actor(request),
            "on_behalf_of": auth.on_behalf_of(request),
            "request_id": request.headers.get("X-Request-Id"),
            "client": request.headers.get("User-Agent"),
        }
        plain = {k: v for k, v in filled_in.items() if v is not None}
        if cache is not None:
            cache["default"] = plain
        return plain
    try:
        meta = events.metadata_from(submitted)
    except msgspec.ValidationError as exc:
        raise problems.from_validation(exc, f"$.events[{index}].metadata") from exc
    actor = auth.actor(request)
    if meta.actor is not None and meta.actor != actor:
        raise problems.invalid(f"$.events[{index}].metadata.actor",
                               f"the actor is the token's name ({actor!r}); say who you act for with "
                               "on_behalf_of or X-Actor")
    filled = msgspec.structs.replace(
        meta,
        actor=actor,
        on_behalf_of=meta.on_behalf_of or auth.on_behalf_of(request),
        request_id=meta.request_id or request.headers.get("X-Request-Id"),
        client=meta.client or request.headers.get("User-Agent"),
    )
    result: dict[str, Any] = msgspec.to_builtins(filled)
    return result


def validate_event(stream: str, index: int, submitted: SubmittedEvent) -> dict[str, Any]:
    """Check ``data`` against the catalogue and the stream; returns the data to store."""
    raw = bytes(submitted.data)
    if b"\\u0000" in raw and _NUL.search(raw):
        raise problems.invalid(f"$.events[{index}].data", "text must not contain the NUL character (\\u0000)")
    try:
        event, data = events.from_json_data(submitted.type, raw)
    except msgspec.ValidationError as exc:
        problem = problems.from_validation(exc, f"$.events[{index}].data")
        if problem.field == f"$.events[{index}].data.type":
            raise problems.invalid(f"$.events[{index}].type",
                                   f"unknown event type {submitted.type!r}; known: "
                                   + ", ".join(sorted(events.TYPES))) from exc
        raise problem from exc
    category, id_field = events.CATEGORY[submitted.type]
    stream_category, stream_id = stream.split("-", 1)
    if stream_category != category:
        raise problems.invalid(f"$.events[{index}].type",
                               f"{submitted.type} belongs in a {category}-* stream, not {stream}")
    if getattr(event, id_field) != stream_id:
        raise problems.invalid(f"$.events[{index}].data.{id_field}",
                               f"must equal the stream id {stream_id!r}")
    return data


@routes.post("/v1/streams/{stream}/events")
async def append(request: web.Request) -> web.Response:
    stream = stream_param(request)
    if streams.category_of(stream) in streams.LEDGER_WRITTEN:
        raise problems.Problem(403, "Forbidden", f"{stream} is written by the ledger itself; clients may "
                                                 "not append to it", field="stream")
    body = await bodies.read_json(request, AppendBody)
    if not body.events:
        raise problems.invalid("$.events", "at least one event is required")
    expected = expected_version(request, body.expected_version)
    key = idempotency_key(request)
    cache: dict[str, dict[str, Any]] = {}
    fresh = ids.generate(len(body.events))  # time-ordered ids, one system call for all
    new: list[records.NewEvent] = []
    for i, e in enumerate(body.events):
        if i and i % _YIELD_EVERY == 0:
            # A long request lets the rest of the process run (the writer answering, other requests).
            await asyncio.sleep(0)
        new.append(records.NewEvent(
            id=e.id or (derived_id(stream, key, i) if key else fresh[i]),
            type=e.type,
            data=validate_event(stream, i, e),
            metadata=metadata_for(request, e.metadata, i, cache),
        ))
    result = await request.app[keys.STORE].append(stream, expected, new)
    return bodies.json_response(
        {
            "stream": result.stream,
            "positions": list(result.positions),
            "first_version": result.first_version,
            "last_version": result.last_version,
        },
        status=201,
        headers={"Idempotent-Replayed": "true"} if result.duplicate else None,
    )


@routes.get("/v1/streams/{stream}")
async def read_stream(request: web.Request) -> web.Response:
    stream = stream_param(request)
    from_version = bodies.query_int(request, "from_version", 1, low=1)
    limit = bodies.query_int(request, "limit", 100, low=1, high=1000)
    page = await request.app[keys.STORE].read_stream(stream, from_version, limit)
    following = page[-1].version + 1 if len(page) == limit else None
    return bodies.json_response(
        {"stream": stream, "events": [wire.event(e) for e in page], "next_from_version": following}
    )


@routes.get("/v1/events")
async def read_all(request: web.Request) -> web.Response:
    after = bodies.query_int(request, "after", 0, low=0)
    limit = bodies.query_int(request, "limit", 100, low=1, high=1000)
    types = bodies.query_list(request, "types")
    if types:
        unknown = [t for t in types if t not in events.TYPES]
        if unknown:
            raise problems.invalid("types", f"unknown event type {unknown[0]!r}")
    categories = bodies.query_list(request, "category")
    page = await request.app[keys.STORE].read_all(after, limit, types=types, categories=categories)
    return bodies.json_response(
        {"events": [wire.event(e) for e in page], "next_after": page[-1].position if page else after}
    )
