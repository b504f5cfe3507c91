"""Audit replay: ``GET /v1/state?at=<position | RFC 3339 time | head>``, the whole fleet then.

The answer is folded from the log itself (nearest snapshot, then the events after it), not read
from the read models, so it is available for any past moment and needs no projector to be running.
A time selects the last event recorded at or before it; ``position`` in the answer says which.
Freezes come as they stood, each said active or not at that time (at a position: when its event was
recorded; at the head: now).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import msgspec
from aiohttp import web

from api import lanes, params, problems
from projections import fleet as fleet_mod
from projections import replay, views

routes = web.RouteTableDef()
_NUMBER = re.compile(r"-?[0-9]+")


def _moment(raw: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise problems.invalid("at", f"expected a log position, head, or an RFC 3339 time such as "
                                     f"2026-01-31T12:00:00Z, got {params.echo(raw)}") from exc
    if moment.tzinfo is None:
        raise problems.invalid("at", f"the time {params.echo(raw)} needs a UTC offset (e.g. Z or +02:00)")
    return moment


@routes.get("/v1/state")
@lanes.expensive
async def state(request: web.Request) -> web.Response:
    raw = request.query.get("at", "head").strip() or "head"
    numeric = _NUMBER.fullmatch(raw) is not None
    wanted = params.integer(request, "at", 0) if numeric else None
    moment = _moment(raw) if not numeric and raw != "head" else None
    async with lanes.connection(request) as conn:
        head = await replay.head(conn)
        if wanted is not None:
            if wanted > head:
                raise problems.invalid("at", f"position {wanted} is beyond the head of the log ({head})")
            position = wanted
        elif moment is not None:
            position = await replay.position_at(conn, moment)
        else:
            position = head
        fleet = await replay.fleet_at(conn, position)
    # Freezes are said active at the moment asked for; at a position, when its event was recorded.
    now = moment if moment is not None else dt.datetime.now(dt.UTC) if wanted is None else None
    # The view and its JSON in a worker thread too: for a large fleet they take the loop milliseconds.
    body = await asyncio.to_thread(_encoded, raw, head, fleet, now)
    return web.Response(body=body, content_type="application/json")


def _encoded(raw: str, head: int, fleet: fleet_mod.Fleet, now: dt.datetime | None) -> bytes:
    return msgspec.json.encode({"at": raw, "head": head, **views.state(fleet, now)})
