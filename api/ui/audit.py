"""The audit page: the whole fleet at a chosen moment, what changed between two moments, and the
proof that the history is unchanged.

``/audit?at=`` takes a position or an RFC 3339 time (a date-time field and a slider over positions
fill it in); the fleet then is folded from the log by the same replay as ``GET /v1/state``
(projections/replay.py). ``&since=`` (a position or time) adds what changed between the two
moments: revisions, pauses, targets, and per-target states (projections/difference.py).
``&verify=1`` recomputes the hash chain over the whole log (ledger/verify.py); the head's digest is
always shown and ``/audit/digest`` downloads it as the file ``ledger verify --digest`` checks.
Replays and verification run on the expensive lane (api/lanes.py), in a lane worker process
(api/lanejobs.py ``Audit`` and ``Verify``), like their API twins.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

import msgspec
from aiohttp import web

from api import keys, lanejobs, lanes, params, problems, reads
from api.ui import render
from ledger import hashing
from ledger import verify as verify_mod

routes = web.RouteTableDef()
_NUMBER: Final = re.compile(r"[0-9]{1,19}")


def _moment(name: str, raw: str) -> dt.datetime | int | None:
    raw = raw.strip()
    if not raw or raw == "head":
        return None
    if _NUMBER.fullmatch(raw):
        return params.parse(name, raw, params.POSITION)
    try:
        moment = dt.datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise problems.invalid(name, f"expected a log position or a time such as 2026-01-31T12:00:00Z, "
                                     f"got {params.echo(raw)}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@routes.get("/audit", name="ui.audit")
@lanes.expensive
async def page(request: web.Request) -> web.Response:
    at = _moment("at", request.query.get("at", ""))
    since = _moment("since", request.query.get("since", ""))
    verify = reads.flag(request, "verify")
    # The head's digest first, through the lane's pool: with the database away that answers 503
    # within db_timeout, before a lane worker is started for nothing.
    async with lanes.connection(request) as conn:
        digest = await verify_mod.head(conn)
    # The folds run in a lane worker (api/workers.py), on this request's turn: a fold of a long log
    # in a thread of this process would take the interpreter from its event loop meanwhile.
    view = lanejobs.decode_view(await lanes.run(request, lanejobs.Audit(
        at=at if isinstance(at, int) else None, at_moment=at if isinstance(at, dt.datetime) else None,
        since=since if isinstance(since, int) else None,
        since_moment=since if isinstance(since, dt.datetime) else None)))
    report = msgspec.json.decode(await lanes.run(request, lanejobs.Verify(first=1))) if verify else None
    recorded_at = view.recorded_at
    return render.page(request, "audit.html", {
        "state": view.state, "position": view.position, "head": view.head,
        "at": request.query.get("at", ""), "since": request.query.get("since", ""),
        "at_time": hashing.format_time(recorded_at) if recorded_at else "",
        # The moment shown, as the date-time field's value (UTC, to the millisecond).
        "at_local": recorded_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] if recorded_at else "",
        "earlier": {"position": view.since} if view.since is not None else None, "changes": view.changes,
        "report": report,
        "digest": {"position": digest[0], "hash": digest[1],
                   "recorded_at": hashing.format_time(digest[2]) if digest[2] else None},
    })


@routes.get("/audit/digest", name="ui.audit_digest")
async def digest(request: web.Request) -> web.Response:
    position, digest_hash, recorded_at = await request.app[keys.STORE].head()
    body = {"position": position, "hash": digest_hash or hashing.GENESIS,
            "recorded_at": hashing.format_time(recorded_at) if recorded_at is not None else None}
    return web.Response(body=msgspec.json.encode(body) + b"\n", content_type="application/json", headers={
        **render.HEADERS, "Content-Disposition": f'attachment; filename="ledger-digest-{position}.json"'})
