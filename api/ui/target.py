"""The target page: its labels, the credential it names (a name, never a secret), the deployments
that reach it with their state there, and its latest outcomes and observations (applies, health,
drift) from the log.

A deployment whose revision a freeze window holds on this target says ``frozen`` (which freezes,
until when), by the applier's own rule (projections/freezerules.py ``shown_frozen``), as the fleet
and deployment pages and ``GET /v1/deployments/{name}`` say it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from api import keys, problems, reads
from api.ui import queries, render
from ledger import hashing
from projections import freezerules, loading
from projections import queries as read_models

routes = web.RouteTableDef()


async def _hold(request: web.Request, conn: Any, found: dict[str, Any]) -> None:
    waiting = [r for r in found["rollouts"] if r["state"] in freezerules.WAITING]
    if not waiting:
        return
    table = await loading.freezes_now(request.app[keys.STORE], timeout=request.app[keys.SETTINGS].db_timeout)
    if not table:
        return
    overridden = await read_models.overridden(conn, sorted({r["deployment"] for r in waiting}))
    now = dt.datetime.now(dt.UTC)
    for row in waiting:
        hold = freezerules.shown_frozen(
            table, found["labels"], now, state=row["state"], revision=row["desired_revision"],
            applied_revision=row["applied_revision"],
            overridden=(row["deployment"], row["desired_revision"]) in overridden)
        if hold is not None:
            row["state"] = "frozen"
            row["reason"] = f"held by freeze {', '.join(hold.freezes)} until {hashing.format_time(hold.until)}"


@routes.get("/targets/{name}", name="ui.target")
async def page(request: web.Request) -> web.Response:
    name = reads.name_param(request, "target name")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        found = await read_models.target(conn, name)
        if found is None:
            raise problems.Problem(404, "Not found", f"target {name} is not registered (or not projected yet)")
        outcomes = await queries.outcomes(conn, name)
        await _hold(request, conn, found)
    return render.page(request, "target.html", {"t": found, "outcomes": outcomes})
