"""``GET /v1/feed``: the log as pages of CloudEvents, for tools that must not touch the database.

Paging is by cursor: ``after`` is a position, the response's ``Link: <…>; rel="next"`` names the
next page. Caching follows from the log's contract: positions are dense and commit in order, so
once a page holds ``limit`` events no event can ever join it. Such a full page is immutable: it
carries a strong ETag and ``Cache-Control: public, max-age=31536000, immutable`` (``Vary: Accept,
Authorization``: a shared cache serves it only to the token that fetched it), and a matching
``If-None-Match`` gets 304. The head page (fewer than ``limit`` events) may still grow, so it is
``no-cache`` and carries no ETag; its next link is the cursor to poll. With ``until`` the range is
closed and a short page has no next link.

Two representations, chosen by ``Accept``: the CloudEvents JSON batch (the default), or
``application/x-ndjson``, one event per line in the ledger's export format (ledger/exporter.py:
every column, metadata whole). The ndjson lines are what ``ledger export`` writes and ``ledger import``
restores, so the exporter copies response bytes straight to its output.

The ETag hashes the representation, the query, the ledger's source URI and the hash of the page's
last event, which by the chain commits to every event before it.
"""

from __future__ import annotations

import hashlib
from typing import Final

from aiohttp import web

from api import bodies, cloudevents, keys, lanes, params, problems
from ledger import events, exporter, records, streams

IMMUTABLE: Final = "public, max-age=31536000, immutable"
# Authorization too: a shared cache keeps a full page ("public") but hands it only to the same token,
# never to a request without one (every read needs a token).
VARY: Final = "Accept, Authorization"
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = params.PAGE.high  # the largest ``limit`` a request may ask for (api/params.py)
NDJSON: Final = "application/x-ndjson"

routes = web.RouteTableDef()


def filters(request: web.Request) -> tuple[list[str] | None, list[str] | None]:
    """Validated ``types=`` and ``category=`` (each repeatable or comma-separated)."""
    types = bodies.query_list(request, "types")
    for name in types or ():
        if name not in events.TYPES:
            raise problems.invalid("types", f"unknown event type {name!r}; known: "
                                   + ", ".join(sorted(events.TYPES)))
    categories = bodies.query_list(request, "category")
    for name in categories or ():
        if name not in streams.CATEGORIES:
            raise problems.invalid("category", f"unknown category {name!r}; known: "
                                   + ", ".join(sorted(streams.CATEGORIES)))
    return types, categories


def ndjson(events: list[records.RecordedEvent]) -> bytes:
    return exporter.encode_lines(events)


def _wants_ndjson(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return NDJSON in accept and cloudevents.BATCH_CONTENT_TYPE not in accept


def _etag(media: str, source: str, after: int, limit: int, until: int | None, types: list[str] | None,
          categories: list[str] | None, last_hash: str) -> str:
    key = "\n".join((media, source, str(after), str(limit), str(until), ",".join(sorted(types or ())),
                     ",".join(sorted(categories or ())), last_hash))
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:40] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


@routes.get("/v1/feed")
@lanes.expensive
async def feed(request: web.Request) -> web.StreamResponse:
    after = params.integer(request, "after", 0)
    limit = params.integer(request, "limit", DEFAULT_LIMIT)
    closed_at = params.optional(request, "until")
    types, categories = filters(request)
    source = request.app[keys.SETTINGS].source_uri
    page = await request.app[keys.STORE].read_all(after, limit, types=types, categories=categories,
                                                  until=closed_at, pool=lanes.pool(request.app))
    media = NDJSON if _wants_ndjson(request) else cloudevents.BATCH_CONTENT_TYPE
    headers: dict[str, str] = {"Vary": VARY}
    full = len(page) == limit
    if full or closed_at is None:
        following = request.rel_url.update_query(after=str(page[-1].position if page else after))
        headers["Link"] = f'<{following}>; rel="next"'
    if full:
        etag = _etag(media, source, after, limit, closed_at, types, categories, page[-1].hash)
        headers.update({"ETag": etag, "Cache-Control": IMMUTABLE})
        if _matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
    else:
        headers["Cache-Control"] = "no-cache"
    body = ndjson(page) if media == NDJSON else cloudevents.encode_batch(page, source)
    return web.Response(body=body, headers=headers, content_type=media)
