"""``GET /v1/verify`` and ``GET /v1/digest``: the audit trail's proofs over HTTP.

``/v1/verify?from=&to=`` recomputes the hash chain over the range (ledger/verify.py) and answers
200 either way: ``{"ok": true, …, "position", "hash"}`` with the last position checked and its
hash, or ``{"ok": false, "position", "problem", "detail", "expected", "found"}`` naming the first
break. A broken chain is the answer to the question asked, not a failed request.

``/v1/digest`` is the head ``{position, hash, recorded_at}``: saved somewhere the database's
owner cannot rewrite, it lets ``ledger verify --digest`` later prove the history up to it unchanged.
"""

from __future__ import annotations

from aiohttp import web

from api import bodies, keys, lanes, params, problems
from ledger import hashing
from ledger import verify as verify_mod

routes = web.RouteTableDef()


@routes.get("/v1/verify")
@lanes.expensive
async def verify(request: web.Request) -> web.Response:
    first = params.integer(request, "from", 1)
    last = params.optional(request, "to")
    if last is not None and last < first:
        raise problems.invalid("to", f"must be at least from ({first}), got {last}")
    async with lanes.connection(request) as conn:
        try:
            report = await verify_mod.chain(conn, first, last)
        except verify_mod.BeyondHead as exc:
            raise problems.invalid("from", str(exc)) from exc
    return bodies.json_response(report.as_dict())


@routes.get("/v1/digest")
async def digest(request: web.Request) -> web.Response:
    position, digest_hash, recorded_at = await request.app[keys.STORE].head()
    return bodies.json_response({
        "position": position,
        "hash": digest_hash or hashing.GENESIS,
        "recorded_at": hashing.format_time(recorded_at) if recorded_at is not None else None,
    }, headers={"Cache-Control": "no-cache"})
