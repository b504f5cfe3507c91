"""The audit page: the whole fleet at a chosen moment, what changed between two moments, and the
proof that the history is unchanged.

``/audit?at=`` takes a position or an RFC 3339 time (a date-time field and a slider over positions
fill it in); the fleet then is folded from the log by the same replay as ``GET /v1/state``
(projections/replay.py). ``&since=`` (a position or time) adds what changed between the two
moments: revisions, pauses, targets, and per-target states. ``&verify=1`` recomputes the hash chain
over the whole log (ledger/verify.py); the head's digest is always shown and ``/audit/digest``
downloads it as the file ``ledger verify --digest`` checks. Replays and verification run on the
expensive lane (api/lanes.py), like their API twins.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from aiohttp import web

from api import keys, lanejobs, lanes, params, problems, reads
from api.ui import render
from ledger import hashing
from ledger import verify as verify_mod
from projections import fleet, replay, views

routes = web.RouteTableDef()
_NUMBER: Final = re.compile(r"[0-9]{1,19}")


@dataclass
class Change:
    kind: str
    subject: str
    before: str
    after: str


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


async def _position(conn: Any, name: str, wanted: dt.datetime | int | None, head: int) -> int:
    if wanted is None:
        return head
    if isinstance(wanted, int):
        if wanted > head:
            raise problems.invalid(name, f"position {wanted} is beyond the head of the log ({head})")
        return wanted
    return await replay.position_at(conn, wanted)


def _rollout_states(state: fleet.Fleet) -> dict[tuple[str, str], str]:
    return {(d.name, t): f"{r.state} r{r.desired_revision}" for d in state.deployments.values()
            for t, r in d.rollouts.items()}


def changes(old: fleet.Fleet, new: fleet.Fleet) -> list[Change]:
    """What differs between two folds of the fleet, deployments first, then targets, then cells."""
    found: list[Change] = []
    for name in sorted(set(old.deployments) | set(new.deployments)):
        a, b = old.deployments.get(name), new.deployments.get(name)
        was = f"r{a.current_revision}" + (" paused" if a.paused else "") + (" removed" if a.removed else "") \
            if a else "absent"
        now = f"r{b.current_revision}" + (" paused" if b.paused else "") + (" removed" if b.removed else "") \
            if b else "absent"
        if was != now:
            found.append(Change("deployment", name, was, now))
    for name in sorted(set(old.targets) | set(new.targets)):
        ta, tb = old.targets.get(name), new.targets.get(name)
        was = _target_text(ta)
        now = _target_text(tb)
        if was != now:
            found.append(Change("target", name, was, now))
    before, after = _rollout_states(old), _rollout_states(new)
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            found.append(Change("rollout", f"{key[0]} on {key[1]}", before.get(key, "—"), after.get(key, "—")))
    return found


def _target_text(target: fleet.Target | None) -> str:
    if target is None:
        return "absent"
    labels = ",".join(f"{k}={v}" for k, v in sorted(target.labels.items()))
    return ("retired " if target.retired else "") + (labels or "(no labels)")


@routes.get("/audit", name="ui.audit")
@lanes.expensive
async def page(request: web.Request) -> web.Response:
    at = _moment("at", request.query.get("at", ""))
    since = _moment("since", request.query.get("since", ""))
    verify = reads.flag(request, "verify")
    async with lanes.connection(request) as conn:
        head = await replay.head(conn)
        position = await _position(conn, "at", at, head)
        state = await replay.fleet_at(conn, position)
        earlier = None
        if since is not None:
            since_position = await _position(conn, "since", since, head)
            earlier = await replay.fleet_at(conn, since_position)
        digest = await verify_mod.head(conn)
    # The chain is recomputed in a lane worker (api/workers.py), on this request's turn.
    report = msgspec.json.decode(await lanes.run(request, lanejobs.Verify(first=1))) if verify else None
    return render.page(request, "audit.html", {
        "state": views.state(state), "position": position, "head": head,
        "at": request.query.get("at", ""), "since": request.query.get("since", ""),
        "at_time": hashing.format_time(state.recorded_at) if state.recorded_at else "",
        # The moment shown, as the date-time field's value (UTC, to the millisecond).
        "at_local": state.recorded_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        if state.recorded_at else "",
        "earlier": earlier, "changes": changes(earlier, state) if earlier is not None else [],
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
