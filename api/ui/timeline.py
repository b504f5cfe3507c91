"""The timeline: the log newest first, filtered by type, stream (or category) and actor, and live.

``/timeline?type=&stream=&actor=&before=`` pages backwards (``before`` is a position); each event
expands to its data, metadata, position, hash and previous hash. ``/timeline/rows?after=`` is the
same list for the events after a position, which the page's script asks for whenever the live feed
reports one and puts on top.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from api import params, problems, reads
from api.ui import queries, render
from ledger import events, streams

routes = web.RouteTableDef()
PAGE: Final = 50
_ACTOR: Final = re.compile(r"[^\x00-\x1f]{1,200}")


def _filter(request: web.Request) -> queries.LogFilter:
    types = tuple(t for t in request.query.getall("type", []) if t)
    for name in types:
        if name not in events.TYPES:
            raise problems.invalid("type", f"unknown event type {name[:60]!r}")
    stream = request.query.get("stream", "").strip()
    if stream:
        try:
            if "-" in stream:
                streams.validate(stream)
            elif stream not in streams.CATEGORIES:
                raise streams.StreamNameError(f"unknown category {stream[:40]!r}")
        except streams.StreamNameError as exc:
            raise problems.invalid("stream", str(exc)) from exc
    actor = request.query.get("actor", "").strip()
    if actor and not _ACTOR.fullmatch(actor):
        raise problems.invalid("actor", "at most 200 characters, no control characters")
    return queries.LogFilter(types, stream, actor)


def _context(wanted: queries.LogFilter, found: list[queries.Event]) -> dict[str, Any]:
    return {"events": found, "filter": wanted, "all_types": sorted(events.TYPES),
            "categories": sorted(streams.CATEGORIES)}


@routes.get("/timeline", name="ui.timeline")
async def page(request: web.Request) -> web.Response:
    wanted = _filter(request)
    before = params.optional(request, "before")
    async with reads.connection(request) as conn:
        head = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        found = await queries.log_page(conn, wanted, before=before, limit=PAGE)
    older = found[-1].position if len(found) == PAGE else None
    query = {k: v for k, v in (("stream", wanted.stream), ("actor", wanted.actor)) if v}
    return render.page(request, "timeline.html", {
        **_context(wanted, found), "head": head, "before": before, "older": older, "query": query})


@routes.get("/timeline/rows", name="ui.timeline_rows")
async def rows(request: web.Request) -> web.Response:
    wanted = _filter(request)
    after = params.integer(request, "after", 0)
    async with reads.connection(request) as conn:
        found = await queries.log_page(conn, wanted, before=None, after=after, limit=PAGE)
    return render.fragment(request, "timeline_rows.html", _context(wanted, found))
