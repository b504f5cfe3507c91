"""Audit replay: ``GET /v1/state?at=<position | RFC 3339 time | head>``, the whole fleet then.

The answer is folded from the log itself (nearest snapshot, then the events after it), not read
from the read models, so it is available for any past moment and needs no projector to be running.
A time selects the last event recorded at or before it; ``position`` in the answer says which.
Freezes come as they stood, each said active or not at that time (at a position: when its event was
recorded; at the head: now). The fold and the answer's encoding run in a lane worker process
(api/lanejobs.py, api/workers.py).
"""

from __future__ import annotations

import datetime as dt
import re

from aiohttp import web

from api import lanejobs, lanes, params, problems

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
    body = await lanes.run(request, lanejobs.State(raw=raw, wanted=wanted, moment=moment))
    return web.Response(body=body, content_type="application/json")
