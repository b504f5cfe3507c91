"""Generic submission and reading of the log: ``/v1/streams/{stream}`` and ``/v1/events``.

A generic append is a client write like any command: its events are decided one after another by
the rules of their stream's category (``projections.rules``, the functions the commands use) and
stored as decided, through the one write path (``api.submission``). Streams the ledger writes
itself (``ledger.streams.WRITERS``) refuse client appends with 403.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
from aiohttp import web

from api import auth, bodies, envelope, feed, keys, params, problems, submission, wire
from ledger import events, streams
from projections import commands, fleet, freezes, loading, rules, selectors, sharing

routes = web.RouteTableDef()
_YIELD_EVERY: Final = 64


class SubmittedEvent(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    data: msgspec.Raw
    id: uuid.UUID | None = None
    metadata: dict[str, Any] = {}


class AppendBody(msgspec.Struct, forbid_unknown_fields=True):
    events: list[SubmittedEvent]
    expected_version: envelope.ExpectedVersion | None = None


def stream_param(request: web.Request) -> str:
    name = request.match_info["stream"]
    try:
        return streams.validate(name)
    except streams.StreamNameError as exc:
        raise problems.invalid("stream", str(exc)) from exc


def validate_event(stream: str, index: int, submitted: SubmittedEvent) -> tuple[events.AnyEvent, frozenset[str]]:
    """Check ``data`` against the catalogue and the stream; returns the event and the fields sent."""
    raw = bytes(submitted.data)
    at = f"$.events[{index}]"
    if submitted.type in events.FREE_FORM:
        bodies.check_text(raw, f"{at}.data", duplicates=True)
    try:
        sent = msgspec.json.decode(raw)
    except RecursionError as exc:
        raise bodies.too_deep(raw, f"{at}.data") from exc
    except msgspec.DecodeError as exc:
        raise problems.invalid(f"{at}.data", f"not JSON: {exc}") from exc
    if not isinstance(sent, dict):
        raise problems.invalid(f"{at}.data", f"must be an object, got {type(sent).__name__}")
    if "type" in sent:
        raise problems.invalid(f"{at}.data.type", "the type goes beside data, not inside it")
    try:
        event = events.decode(submitted.type, raw)
    except events.UnknownType as exc:
        raise problems.invalid(f"{at}.type", str(exc)) from exc
    except events.InvalidData as exc:
        raise problems.invalid(f"{at}.data{exc.path[1:]}", exc.reason) from exc
    category, id_field = events.CATEGORY[submitted.type]
    stream_category, stream_id = stream.split("-", 1)
    if stream_category != category:
        raise problems.invalid(f"{at}.type", f"{submitted.type} belongs in a {category}-* stream, not {stream}")
    if getattr(event, id_field) != stream_id:
        raise problems.invalid(f"{at}.data.{id_field}", f"must equal the stream id {stream_id!r}")
    return event, frozenset(sent)


def _decider(request: web.Request, stream: str,
             submitted: list[tuple[events.AnyEvent, frozenset[str]]]) -> submission.DecideAll:
    """Decides each event on the state the ones before it leave (folded into the loaded state)."""
    store = request.app[keys.STORE]
    timeout = request.app[keys.SETTINGS].db_timeout
    principal = request.get(auth.PRINCIPAL)  # none without access control (bench/open_service.py)
    scope = principal.scope if principal is not None else events.Scope()
    needs = rules.NEEDS_TARGETS | (rules.NEEDS_TARGETS_WHEN_SCOPED if scope.targets else frozenset())

    catalogue = request.app[keys.CREDENTIALS].current()

    async def decide(state: loading.StreamState) -> Sequence[events.Event]:
        targets: Mapping[str, fleet.Target] = {}
        frozen: dict[str, freezes.Freeze] = {}
        holders: fleet.Fleet | None = None
        if any(type(event) in needs for event, _ in submitted):
            targets = await loading.targets(store, request.app[keys.TARGETS], timeout=timeout)
            frozen = await loading.freezes_now(store, timeout=timeout)
        if any(type(event) in rules.NEEDS_TARGETS for event, _ in submitted):
            holders = await _holders(store, stream, [event for event, _ in submitted], targets, timeout)
        now = dt.datetime.now(dt.UTC)
        ctx = rules.Context(targets, scope, catalogue, frozen, now, holders)
        decided: list[events.Event] = []
        for i, (event, present) in enumerate(submitted):
            if i and i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long request lets the rest of the process run
            try:
                one = rules.decide(state.state, event, present, ctx)
            except (commands.DomainError, selectors.InvalidInput) as exc:
                raise submission.problem_for(exc, f"$.events[{i}].") from exc
            fleet.apply(state.state, one, fleet.Meta(state.position + i + 1, stream, state.version + i + 1, now))
            decided.append(one)
        return decided

    return decide


async def _holders(store: Any, stream: str, submitted: list[events.AnyEvent], targets: Mapping[str, fleet.Target],
                   timeout: float) -> fleet.Fleet:
    """What the sharing rule needs (rules.Context.holders): the deployments that may hold an object
    the submitted revisions name or their rollbacks restore, and with a rollback the stream's own."""
    deployment = stream.split("-", 1)[1]
    found = {n for e in submitted if isinstance(e, events.RevisionSubmitted) for n in sharing.names(e.manifests)}
    backs = [e.to_revision for e in submitted if isinstance(e, events.RolledBack)]
    if backs:
        own = await loading.holders(store, deployment, [], {}, own=True, timeout=timeout)
        found.update(n for r in backs for n in sharing.names(sharing.restored(deployment, r, own)))
    return await loading.holders(store, deployment, sorted(found), targets, own=bool(backs), timeout=timeout)


@routes.post("/v1/streams/{stream}/events")
async def append(request: web.Request) -> web.Response:
    stream = stream_param(request)
    if streams.written_by_ledger(stream):
        raise problems.Problem(403, "Forbidden", f"{stream} is written by the ledger itself; clients may "
                                                 "not append to it", field="stream")
    body = await bodies.read_json(request, AppendBody)
    if not body.events:
        raise problems.invalid("$.events", "at least one event is required")
    submitted = []
    for i, e in enumerate(body.events):
        if i and i % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        submitted.append(validate_event(stream, i, e))
    plan = await submission.plan(request, stream, body.expected_version, [(e.id, e.metadata) for e in body.events],
                                 creates=type(submitted[0][0]) in rules.CREATES)
    result = await submission.write(request, plan, _decider(request, stream, submitted))
    return bodies.json_response(
        {
            "stream": result.stream,
            "positions": list(result.positions),
            "first_version": result.first_version,
            "last_version": result.last_version,
        },
        status=201,
        headers={"Idempotent-Replayed": "true"} if result.replayed else None,
    )


@routes.get("/v1/streams/{stream}")
async def read_stream(request: web.Request) -> web.Response:
    stream = stream_param(request)
    from_version = params.integer(request, "from_version", 1)
    limit = params.integer(request, "limit", 100)
    page = await request.app[keys.STORE].read_stream(stream, from_version, limit)
    following = page[-1].version + 1 if len(page) == limit else None
    return bodies.json_response(
        {"stream": stream, "events": [wire.event(e) for e in page], "next_from_version": following}
    )


@routes.get("/v1/events")
async def read_all(request: web.Request) -> web.Response:
    after = params.integer(request, "after", 0)
    limit = params.integer(request, "limit", 100)
    types, categories = feed.filters(request)
    page = await request.app[keys.STORE].read_all(after, limit, types=types, categories=categories)
    return bodies.json_response(
        {"events": [wire.event(e) for e in page], "next_after": page[-1].position if page else after}
    )
