"""Running a domain command over HTTP: load the stream, decide, append; errors as problem+json.

The decision itself is pure (``projections.commands``); this module is the I/O around it.

Decisions:

- **Idempotency-Key**: the event id is derived from (stream, key) (``api.streams.derived_id``). A
  retry is recognised by looking that id up *before* any state is loaded or a revision numbered, and
  is answered with the first result (``Idempotent-Replayed: true``); nothing is written. Two first
  attempts racing each other: the loser's append finds the id taken and is answered with the
  winner's result.
- **Expected version** (``expected_version`` or ``If-Match``): checked against the stream as loaded,
  before deciding, so a stale client gets 409 naming both versions rather than a domain error about
  a state it has not seen; the append then carries it too, so a race still fails with 409. Without
  one the append expects exactly the version that was read, and on a conflict the command is decided
  again on fresh state (a few times), so the server can number revisions without gaps or repeats.
  Commands on one stream in one process queue on a per-stream lock first, so they do not race each
  other at all; the retries are for processes racing.
- **Domain errors**: not found 404, conflict 409, invalid input 422 naming the field (and the
  selector position or manifest index).
- **A deadline of ``db_timeout``** covers what comes before the append: the idempotency lookup,
  the turn at the stream's lock and loading the state, so commands queued on one stream behind a
  frozen database answer 503 together instead of one timeout after another. The append itself is
  never cancelled halfway; it has the writer's own timeouts.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web

from api import bodies, keys, problems, streams
from ledger import db, errors, events, ids, records
from projections import commands, loading, manifests, selectors

ATTEMPTS: Final = 20
T = TypeVar("T")

Decide = Callable[[loading.StreamState], Awaitable[events.Event | None]]


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


def problem_for(exc: Exception) -> problems.Problem:
    """The problem+json for a refused command or invalid input."""
    match exc:
        case commands.NotFound():
            return problems.Problem(404, "Not found", exc.message, field=exc.field)
        case commands.Conflict():
            return problems.Problem(409, "Conflict", exc.message, field=exc.field)
        case commands.Invalid():
            return problems.invalid(exc.field or "body", exc.message)
        case commands.OutOfScope():
            return problems.Problem(403, "Forbidden", exc.message, field=exc.field, missing="scope")
        case selectors.SelectorError():
            detail = f"{exc.field}: {exc.message} at position {exc.position}"
            return problems.Problem(422, "Invalid request", detail, field=exc.field, position=exc.position,
                                    errors=[{"field": exc.field, "reason": str(exc), "position": exc.position}])
        case manifests.ManifestError():
            return problems.Problem(422, "Invalid request", f"{exc.field}: {exc.message}", field=exc.field,
                                    index=exc.index,
                                    errors=[{"field": exc.field, "reason": exc.message, "index": exc.index}])
        case selectors.InvalidInput():
            return problems.invalid(exc.field, exc.message)
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


def _replayed(found: loading.Stored) -> Written:
    return Written(found.stream, found.type, json.loads(found.data), found.position, found.version,
                   replayed=True)


async def run(request: web.Request, stream: str, body_expected: streams.ExpectedVersion | None,
              decide: Decide) -> Written:
    """Decide and append one command's event to ``stream``; see the module docstring."""
    store = request.app[keys.STORE]
    timeout = request.app[keys.SETTINGS].db_timeout
    deadline = asyncio.get_running_loop().time() + timeout
    expected = streams.expected_version(request, body_expected)
    key = streams.idempotency_key(request)
    event_id = streams.derived_id(stream, key, 0) if key else None
    if event_id is not None:
        async with db.deadline(deadline):
            found = await loading.by_id(store, event_id, timeout=timeout)
        if found is not None:
            return _replayed(found)
    metadata = streams.metadata_for(request, {}, 0)
    lock = request.app[keys.STREAM_LOCKS](stream)
    async with db.deadline(deadline):
        await lock.acquire()
    try:
        return await _decide_and_append(request, stream, expected, event_id, metadata, decide, deadline)
    finally:
        lock.release()


async def _decide_and_append(request: web.Request, stream: str, expected: records.ExpectedVersion,
                             event_id: uuid.UUID | None, metadata: dict[str, Any], decide: Decide,
                             deadline: float) -> Written:
    store = request.app[keys.STORE]
    timeout = request.app[keys.SETTINGS].db_timeout
    for attempt in range(ATTEMPTS):
        async with db.deadline(deadline):
            state = await loading.stream_state(store, stream, timeout=timeout)
            _check(stream, expected, state.version)
            try:
                event = await decide(state)
            except (commands.DomainError, selectors.InvalidInput) as exc:
                raise problem_for(exc) from exc
        if event is None:
            return Written(stream, None, {}, state.position, state.version)
        new = records.NewEvent(event_id or ids.new(), events.type_name(event), events.to_data(event),
                               metadata)
        try:
            result = await store.append(
                stream, expected if expected != "any" else (state.version or "no_stream"), [new])
        except errors.WrongExpectedVersion:
            if expected != "any":
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
            continue
        except errors.EventIdConflict:
            found = await loading.by_id(store, new.id, timeout=timeout) if event_id else None
            if found is None:
                raise
            return _replayed(found)
        return Written(stream, new.type, new.data, result.positions[0], result.last_version,
                       replayed=result.duplicate)
    raise problems.Problem(503, "Too much contention",
                           f"{stream} changed under this command {ATTEMPTS} times in a row; retry",
                           headers={"Retry-After": "1"})
