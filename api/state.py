"""Audit replay: ``GET /v1/state?at=<position | RFC 3339 time | head>``, the whole fleet then.

The answer is folded from the log itself (nearest snapshot, then the events after it), not read
from the read models, so it is available for any past moment and needs no projector to be running.
A time selects the last event recorded at or before it; ``position`` in the answer says which.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from api import bodies, lanes, problems
from projections import replay, views

routes = web.RouteTableDef()


def _moment(raw: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise problems.invalid("at", f"expected a log position, head, or an RFC 3339 time such as "
                                     f"2026-01-31T12:00:00Z, got {raw!r}") from exc
    if moment.tzinfo is None:
        raise problems.invalid("at", f"the time {raw!r} needs a UTC offset (e.g. Z or +02:00)")
    return moment


@routes.get("/v1/state")
@lanes.expensive
async def state(request: web.Request) -> web.Response:
    raw = request.query.get("at", "head").strip() or "head"
    async with lanes.connection(request) as conn:
        head = await replay.head(conn)
        if raw == "head":
            position = head
        elif raw.isdigit():
            position = int(raw)
            if position > head:
                raise problems.invalid("at", f"position {position} is beyond the head of the log ({head})")
        else:
            position = await replay.position_at(conn, _moment(raw))
        fleet = await replay.fleet_at(conn, position)
    return bodies.json_response({"at": raw, "head": head, **views.state(fleet)})
