"""Targets (clusters): ``PUT``/``DELETE``/``GET /v1/targets/{name}`` and ``GET /v1/targets``.

PUT registers a new name (201) or updates an existing target (200); a PUT that changes nothing
records nothing and answers 200 with ``changed: false``. The body names one of the operator's
credentials (``credentials``); the registration check (ledger.access) refuses anything else with 422
naming the field. DELETE retires. The list filters with a
Kubernetes label selector (``?selector=region=eu``) and leaves retired targets out unless
``?include_retired=true``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from api import bodies, envelope, keys, problems, reads, submission
from ledger import access
from ledger import streams as stream_names
from projections import commands, loading, queries, selectors

routes = web.RouteTableDef()


class TargetBody(access.Access, frozen=True, kw_only=True):
    """Labels and the access fields (ledger.access: ``credentials`` names the operator's credential)."""

    labels: dict[str, str] = {}
    expected_version: envelope.ExpectedVersion | None = None


class RetireBody(msgspec.Struct, forbid_unknown_fields=True):
    expected_version: envelope.ExpectedVersion | None = None


@routes.put("/v1/targets/{name}")
async def put_target(request: web.Request) -> web.Response:
    name = reads.name_param(request, "target name")
    body = await bodies.read_json(request, TargetBody)
    command = commands.RegisterTarget(name, body.labels, access.of(body))
    catalogue = request.app[keys.CREDENTIALS].current()

    async def decide(state: loading.StreamState) -> Any:
        return commands.register_target(state.state.targets.get(name), command, catalogue)

    written = await submission.run(request, stream_names.name("target", name), body.expected_version, decide)
    return written.response("target", name, 201 if written.type == "TargetRegistered" else 200)


@routes.delete("/v1/targets/{name}")
async def retire_target(request: web.Request) -> web.Response:
    name = reads.name_param(request, "target name")
    body = await submission.optional_json(request, RetireBody)

    async def decide(state: loading.StreamState) -> Any:
        return commands.retire_target(name, state.state.targets.get(name))

    written = await submission.run(request, stream_names.name("target", name), body.expected_version, decide)
    return written.response("target", name, 200)


@routes.get("/v1/targets")
async def list_targets(request: web.Request) -> web.Response:
    text = request.query.get("selector")
    selector = None
    if text is not None:
        try:
            selector = selectors.parse(text)
        except selectors.SelectorError as exc:
            raise submission.problem_for(exc) from exc
    include_retired = reads.flag(request, "include_retired")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        found = await queries.targets(conn, selector, include_retired=include_retired)
    return bodies.json_response(found)


@routes.get("/v1/targets/{name}")
async def get_target(request: web.Request) -> web.Response:
    name = reads.name_param(request, "target name")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        found = await queries.target(conn, name)
    if found is None:
        raise problems.Problem(404, "Not found", f"target {name} is not registered (or not projected yet)")
    return bodies.json_response(found, headers={"ETag": f'"{found["version"]}"'})
