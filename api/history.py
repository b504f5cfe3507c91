"""A deployment's history as version control: the log of revisions, one revision, and diffs.

``/revisions`` pages through who deployed what, when and why (``?from_revision=&limit=``), with the
selector and the targets it matched at the time and, for rollbacks, the revision restored.
``/revisions/{n}`` returns the manifests (as JSON, or as canonical YAML when YAML is preferred).
``/diff?from=&to=`` is the unified diff of two revisions' manifests rendered as YAML with a stable
key order (``projections.diffs``); it defaults to the current revision against its predecessor and
answers ``text/plain`` when that is preferred, JSON ``{diff}`` otherwise.
"""

from __future__ import annotations

from aiohttp import web

from api import bodies, params, problems, reads
from projections import diffs, fleet, queries, views

routes = web.RouteTableDef()


def _prefers(request: web.Request, *types: str) -> bool:
    """Whether the Accept header ranks one of ``types`` above application/json."""
    best: tuple[float, str] = (0.0, "")
    for part in request.headers.get("Accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if media in (*types, "application/json") and quality > best[0]:
            best = (quality, media)
    return best[1] in types


async def _revision(request: web.Request, name: str, number: int) -> fleet.Revision:
    async with reads.connection(request) as conn:
        found = await queries.revision(conn, name, number)
    if found is None:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revision {number} (or not projected yet)",
                               field="revision")
    return found


@routes.get("/v1/deployments/{name}/revisions")
async def list_revisions(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    from_revision = params.integer(request, "from_revision", 1)
    limit = params.integer(request, "limit", 100)
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        found = await queries.revisions(conn, name, from_revision=from_revision, limit=limit)
    if found is None:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revisions (or none projected yet)")
    return bodies.json_response(found)


@routes.get("/v1/deployments/{name}/revisions/{number}")
async def get_revision(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    number = params.integer(request, "number", 0)
    await reads.wait_for_position(request)
    found = await _revision(request, name, number)
    manifests = queries.manifests(found)
    if _prefers(request, "application/yaml", "text/yaml"):
        return web.Response(text=diffs.render_yaml(manifests), content_type="application/yaml")
    return bodies.json_response({**views.revision(name, found), "manifests": manifests})


@routes.get("/v1/deployments/{name}/diff")
async def diff(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    wanted_to = params.optional(request, "to")
    wanted_from = params.optional(request, "from")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        current = await queries.deployment(conn, name)
    if current is None:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revisions (or none projected yet)")
    to = current["current_revision"] if wanted_to is None else wanted_to
    start = max(to - 1, 1) if wanted_from is None else wanted_from
    old = await _revision(request, name, start)
    new = await _revision(request, name, to)
    text = diffs.unified_diff(queries.manifests(old), queries.manifests(new),
                              from_label=f"{name}/revisions/{start}", to_label=f"{name}/revisions/{to}")
    if _prefers(request, "text/plain"):
        return web.Response(text=text, content_type="text/plain")
    return bodies.json_response({"deployment": name, "from": start, "to": to, "diff": text})
