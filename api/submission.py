"""The one way in: load the stream, decide, append; errors as problem+json.

Every client write (a command under ``/v1/targets`` or ``/v1/deployments``, or a generic append to
``/v1/streams/{stream}/events``) passes through :func:`write`. The decision itself is pure
(``projections.commands``, reached from a generic append through ``projections.rules``); this
module is the I/O around it.

Decisions:

- **Idempotency** (``api.idempotency`` says the rules): the ids a request will use (derived from its
  ``Idempotency-Key``, or chosen by the client) are looked up before any state is loaded or a
  revision numbered. Stored with the request's fingerprint: a retry, answered with the first result
  (``Idempotent-Replayed: true``) and nothing written. Stored for another request: 422 for a key,
  409 for a client id. Two first attempts racing each other: the loser's append finds the ids taken
  and is answered the same way.
- **Expected version** (``expected_version`` or ``If-Match``): checked against the stream as loaded,
  before deciding, so a stale client gets 409 naming both versions rather than a domain error about
  a state it has not seen; the append then carries it too, so a race still fails with 409. Without
  one the append expects exactly the version that was read, and on a conflict the write is decided
  again on fresh state (a few times), so the server can number revisions without gaps or repeats.
  Writes to one stream in one process queue on a per-stream lock first, so they do not race each
  other at all; the retries are for processes racing.
- **A write that creates its stream** (``Plan.creates``: a generic append whose first event is one
  of ``projections.rules.CREATES``, a target's registration) is first decided on the empty stream
  without reading it, and appended expecting no stream: the writer can then plan it from memory
  too (ledger/writer.py), so the common case costs no read and no checked transaction. If the
  stream exists after all (a retired target registered again, a name taken), the writer refuses
  the guess and nothing is written; the write is decided again on the stream as stored, as is a
  guess the rules refuse or find nothing to record for, so every answer comes from the stream as
  stored.
- **Several events in one append** are decided one after another, each on the state the previous
  ones leave, and stored together or not at all.
- **Domain errors**: not found 404, conflict 409, invalid input 422 naming the field (and the
  selector position or manifest index).
- **A deadline of ``db_timeout``** covers what comes before the append: the idempotency lookup,
  the turn at the stream's lock and loading the state, so writes queued on one stream behind a
  frozen database answer 503 together instead of one timeout after another. The append itself is
  never cancelled halfway; it has the writer's own timeouts.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web

from api import access, bodies, envelope, idempotency, keys, problems
from ledger import db, errors, events, ids, records
from projections import commands, fleet, loading, manifests, selectors

ATTEMPTS: Final = 20
T = TypeVar("T")

Decide = Callable[[loading.StreamState], Awaitable[events.Event | None]]
# Decides every event of a request on the state it is given (and may fold them into it).
DecideAll = Callable[[loading.StreamState], Awaitable[Sequence[events.Event]]]


@dataclass(frozen=True)
class Recorded:
    """What a write recorded (or found recorded, or decided not to record)."""

    stream: str
    types: tuple[str, ...]
    data: tuple[dict[str, Any], ...]
    positions: tuple[int, ...]
    first_version: int
    last_version: int
    replayed: bool = False


@dataclass(frozen=True)
class Written:
    """What a command recorded (or found recorded, or decided not to record)."""

    stream: str
    type: str | None
    data: dict[str, Any]
    position: int
    version: int
    replayed: bool = False

    @property
    def changed(self) -> bool:
        """Whether the command recorded an event (a replay answers as the first attempt did)."""
        return self.type is not None

    def headers(self) -> dict[str, str]:
        found = {"ETag": f'"{self.version}"'}
        if self.replayed:
            found["Idempotent-Replayed"] = "true"
        return found

    def response(self, kind: str, name: str, status: int) -> web.Response:
        """The answer of a resource write (a target, a freeze): what was written, where and whether."""
        body = {kind: name, "stream": self.stream, "event": self.type, "position": self.position,
                "version": self.version, "changed": self.changed}
        return bodies.json_response(body, status=status, headers=self.headers())


@dataclass(frozen=True)
class Plan:
    """How a request writes: the ids it will use (None: a fresh one) and the metadata it records."""

    stream: str
    expected: records.ExpectedVersion
    ids: tuple[uuid.UUID | None, ...]
    metadata: tuple[dict[str, Any], ...]
    key: str | None
    client_ids: frozenset[uuid.UUID]
    fingerprint: str | None
    # The first event is one that creates its stream (rules.CREATES): decide first on the empty
    # stream without reading it, and append expecting no stream (see _decide_and_append).
    creates: bool = False


def problem_for(exc: Exception, prefix: str = "") -> problems.Problem:
    """The problem+json for a refused decision or invalid input; ``prefix`` goes before the field."""
    named: str | None = getattr(exc, "field", None)
    field = f"{prefix}{named}" if named else (prefix.rstrip(".") or None)
    match exc:
        case commands.NotFound():
            return problems.Problem(404, "Not found", exc.message, field=field)
        case commands.Conflict():
            return problems.Problem(409, "Conflict", exc.message, field=field, **getattr(exc, "members", {}))
        case commands.Invalid():
            return problems.invalid(field or "body", exc.message)
        case commands.OutOfScope():
            return problems.Problem(403, "Forbidden", exc.message, field=field, missing="scope")
        case selectors.SelectorError():
            detail = f"{field}: {exc.message} at position {exc.position}"
            return problems.Problem(422, "Invalid request", detail, field=field, position=exc.position,
                                    errors=[{"field": field, "reason": exc.message, "position": exc.position}])
        case manifests.ManifestError():
            return problems.Problem(422, "Invalid request", f"{field}: {exc.message}", field=field,
                                    index=exc.index,
                                    errors=[{"field": field, "reason": exc.message, "index": exc.index}])
        case selectors.InvalidInput():
            return problems.invalid(field or "body", exc.message)
    raise exc


async def optional_json(request: web.Request, kind: type[T]) -> T:
    """A JSON body of ``kind`` when there is one; ``kind()`` (all defaults) for an empty body."""
    if not request.body_exists or request.content_length == 0:
        return kind()
    return await bodies.read_json(request, kind)


def _check(stream: str, expected: records.ExpectedVersion, actual: int) -> None:
    ok = (
        expected == "any"
        or (expected == "no_stream" and actual == 0)
        or (expected == "exists" and actual > 0)
        or expected == actual
    )
    if not ok:
        raise errors.WrongExpectedVersion(stream, expected, actual)


async def plan(request: web.Request, stream: str, body_expected: envelope.ExpectedVersion | None,
               submitted: Sequence[tuple[uuid.UUID | None, dict[str, Any]]], *, creates: bool = False) -> Plan:
    """The ids and metadata for ``submitted`` (client id or None, client metadata) events;
    ``creates``: the first of them creates its stream (``Plan.creates``)."""
    key = idempotency.key(request)
    actor = idempotency.actor(request)
    chosen = tuple(given or (idempotency.event_id(actor, stream, key, i) if key else None)
                   for i, (given, _) in enumerate(submitted))
    fingerprint = await idempotency.fingerprint(request) if any(chosen) else None
    cache: dict[str, dict[str, Any]] = {}
    stamped: dict[int, dict[str, Any]] = {}  # one dict per distinct metadata, as the writer expects
    metadata = []
    for i, (_, meta) in enumerate(submitted):
        filled = envelope.metadata_for(request, meta, i, cache)
        if fingerprint is not None or "request_hash" in filled:
            source = id(filled)
            if source not in stamped:
                stamped[source] = {k: v for k, v in filled.items() if k != "request_hash"}
                if fingerprint is not None:
                    stamped[source]["request_hash"] = fingerprint
            filled = stamped[source]
        metadata.append(filled)
    return Plan(stream, envelope.expected_version(request, body_expected), chosen, tuple(metadata), key,
                frozenset(given for given, _ in submitted if given is not None), fingerprint, creates)


def _earlier(plan_: Plan, found: dict[uuid.UUID, loading.Stored]) -> Recorded:
    """The first attempt's result for a retry, or the refusal for a reuse of its ids."""
    hits = [found[i] for i in plan_.ids if i is not None and i in found]
    same = all(
        hit.stream == plan_.stream and json.loads(hit.metadata).get("request_hash") == plan_.fingerprint
        for hit in hits)
    if same and len(hits) == len(plan_.ids):
        return Recorded(plan_.stream, tuple(h.type for h in hits), tuple(json.loads(h.data) for h in hits),
                        tuple(h.position for h in hits), min(h.version for h in hits),
                        max(h.version for h in hits), replayed=True)
    first = next(i for i in plan_.ids if i is not None and i in found)
    if plan_.key is not None and first not in plan_.client_ids:
        raise idempotency.reused(plan_.key)
    hit = found[first]
    detail = "part of this append is stored already" if same else "stored for a different request"
    raise errors.EventIdConflict(first, hit.stream, hit.position, detail)


async def _lookup(request: web.Request, plan_: Plan) -> Recorded | None:
    wanted = [i for i in plan_.ids if i is not None]
    if not wanted:
        return None
    store = request.app[keys.STORE]
    found = await loading.by_ids(store, wanted, timeout=request.app[keys.SETTINGS].db_timeout)
    return _earlier(plan_, found) if found else None


async def write(request: web.Request, plan_: Plan, decide: DecideAll) -> Recorded:
    """Decide ``plan_``'s events and append them, or answer a retry; see the module docstring."""
    deadline = asyncio.get_running_loop().time() + request.app[keys.SETTINGS].db_timeout
    lock = request.app[keys.STREAM_LOCKS](plan_.stream)
    async with db.deadline(deadline):
        await lock.acquire()
    try:
        if any(plan_.ids):
            async with db.deadline(deadline):
                earlier = await _lookup(request, plan_)
            if earlier is not None:
                return earlier
        return await _decide_and_append(request, plan_, decide, deadline)
    finally:
        lock.release()


async def _decide_and_append(request: web.Request, plan_: Plan, decide: DecideAll, deadline: float) -> Recorded:
    store = request.app[keys.STORE]
    timeout = request.app[keys.SETTINGS].db_timeout
    stream, expected = plan_.stream, plan_.expected
    guess = plan_.creates and expected in ("any", "no_stream")
    for attempt in range(ATTEMPTS):
        async with db.deadline(deadline):
            if guess:
                state = loading.StreamState(fleet.empty(), 0, 0)
                try:
                    decided = await decide(state)
                except problems.Problem:
                    decided = []
                if not decided:  # refused, or nothing to record, on a guess: answer from the stream
                    guess = False
                    continue
            else:
                state = await loading.stream_state(store, stream, timeout=timeout)
                _check(stream, expected, state.version)
                decided = await decide(state)
        if not decided:
            return Recorded(stream, (), (), (state.position,), state.version, state.version)
        fresh = ids.generate(len(decided))
        new = [records.NewEvent(given or fresh[i], events.type_name(event), events.to_data(event),
                                plan_.metadata[i])
               for i, (event, given) in enumerate(zip(decided, plan_.ids, strict=True))]
        try:
            result = await store.append(
                stream, expected if expected != "any" else (state.version or "no_stream"), new)
        except errors.WrongExpectedVersion:
            if guess and expected == "any":  # the stream exists after all: decide on what it holds
                guess = False
                continue
            if expected != "any":
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
            continue
        except errors.EventIdConflict:
            earlier = await _lookup(request, plan_)
            if earlier is None:
                raise
            return earlier
        if result.duplicate:
            earlier = await _lookup(request, plan_)
            if earlier is not None:
                return earlier
        else:
            access.wrote(request, result.positions)
        return Recorded(stream, tuple(e.type for e in new), tuple(e.data for e in new), result.positions,
                        result.first_version, result.last_version, replayed=result.duplicate)
    raise problems.Problem(503, "Too much contention",
                           f"{stream} changed under this write {ATTEMPTS} times in a row; retry",
                           headers={"Retry-After": "1"})


async def run(request: web.Request, stream: str, body_expected: envelope.ExpectedVersion | None,
              decide: Decide, metadata: dict[str, Any] | None = None) -> Written:
    """Decide and append one command's event to ``stream`` (``metadata``: what the caller records
    besides what the request says, such as the web UI's reason)."""
    plan_ = await plan(request, stream, body_expected, [(None, metadata or {})])

    async def decide_all(state: loading.StreamState) -> Sequence[events.Event]:
        try:
            event = await decide(state)
        except (commands.DomainError, selectors.InvalidInput) as exc:
            raise problem_for(exc) from exc
        return [event] if event is not None else []

    recorded = await write(request, plan_, decide_all)
    if not recorded.types:
        return Written(stream, None, {}, recorded.positions[0], recorded.last_version)
    return Written(stream, recorded.types[0], recorded.data[0], recorded.positions[0], recorded.last_version,
                   replayed=recorded.replayed)
