"""The target page: its labels, the credential it names (a name, never a secret), the deployments
that reach it with their state there, and its latest outcomes and observations (applies, health,
drift) from the log."""

from __future__ import annotations

from aiohttp import web

from api import problems, reads
from api.ui import queries, render
from projections import queries as read_models

routes = web.RouteTableDef()


@routes.get("/targets/{name}", name="ui.target")
async def page(request: web.Request) -> web.Response:
    name = reads.name_param(request, "target name")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        found = await read_models.target(conn, name)
        if found is None:
            raise problems.Problem(404, "Not found", f"target {name} is not registered (or not projected yet)")
        outcomes = await queries.outcomes(conn, name)
    return render.page(request, "target.html", {"t": found, "outcomes": outcomes})
