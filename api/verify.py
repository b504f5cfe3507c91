"""``GET /v1/verify`` and ``GET /v1/digest``: the audit trail's proofs over HTTP.

``/v1/verify?from=&to=`` recomputes the hash chain over the range (ledger/verify.py) and answers
200 either way: ``{"ok": true, …, "position", "hash"}`` with the last position checked and its
hash, or ``{"ok": false, "position", "problem", "detail", "expected", "found"}`` naming the first
break. A broken chain is the answer to the question asked, not a failed request. The chain is
recomputed in a lane worker process (api/workers.py), and verifies of the same range that arrive
while one runs share its answer (single-flight, api/lanes.py): ten auditors asking at once cost one
recomputation, as the digest of one head is one computation. With no ``to``, a request that joins a
run answers to the head as that run found it (``to`` in the answer says where).

``/v1/digest`` is the head ``{position, hash, recorded_at}``: saved somewhere the database's
owner cannot rewrite, it lets ``ledger verify --digest`` later prove the history up to it unchanged.
"""

from __future__ import annotations

from aiohttp import web

from api import bodies, keys, lanejobs, lanes, params, problems
from ledger import hashing

routes = web.RouteTableDef()


@routes.get("/v1/verify")
@lanes.coalesced
async def verify(request: web.Request) -> web.Response:
    first = params.integer(request, "from", 1)
    last = params.optional(request, "to")
    if last is not None and last < first:
        raise problems.invalid("to", f"must be at least from ({first}), got {last}")
    body = await lanes.shared(request, lanejobs.Verify(first=max(1, first), last=last))
    return web.Response(body=body, content_type="application/json")


@routes.get("/v1/digest")
async def digest(request: web.Request) -> web.Response:
    position, digest_hash, recorded_at = await request.app[keys.STORE].head()
    return bodies.json_response({
        "position": position,
        "hash": digest_hash or hashing.GENESIS,
        "recorded_at": hashing.format_time(recorded_at) if recorded_at is not None else None,
    }, headers={"Cache-Control": "no-cache"})
