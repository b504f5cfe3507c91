"""Progressive rollouts over HTTP: approve a wave, promote one (end its soak early), halt, resume,
and the rollout as it stands.

The decisions are pure (projections/rollout_commands.py) over the deployment folded with its
rollout stream (projections/loading.py); the write goes through the one way in (api/submission.py)
to ``rollout-<name>``. Approvals and promotions carry the id the driver would give the same event
(projections/rollout_decisions.py), so a wave is approved or started once, whoever comes first;
the second is a 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from api import auth, bodies, envelope, keys, problems, reads, submission
from ledger import events
from ledger import streams as stream_names
from projections import commands, fleet, loading, rollout_commands, waves

routes = web.RouteTableDef()


class ApproveBody(msgspec.Struct, forbid_unknown_fields=True):
    wave: str
    reason: str = ""
    expected_version: envelope.ExpectedVersion | None = None


class PromoteBody(msgspec.Struct, forbid_unknown_fields=True):
    wave: str
    reason: str = ""
    expected_version: envelope.ExpectedVersion | None = None


class HaltBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""
    expected_version: envelope.ExpectedVersion | None = None


Decide = Callable[[fleet.Deployment | None], events.Event]


def _problem(exc: Exception) -> problems.Problem:
    if isinstance(exc, rollout_commands.Forbidden):
        return problems.Problem(403, "Forbidden", exc.message, field=exc.field)
    return submission.problem_for(exc)


async def _load(request: web.Request, name: str) -> tuple[fleet.Deployment | None, loading.StreamState]:
    state, stream = await loading.deployment_with_rollout(
        request.app[keys.STORE], name, timeout=request.app[keys.SETTINGS].db_timeout)
    return state.deployments.get(name), stream


async def _record(request: web.Request, name: str, expected: envelope.ExpectedVersion | None,
                  decide: Decide, *, fixed_id: bool = False) -> web.Response:
    """Decide on the deployment with its rollout and append to ``rollout-<name>``."""
    scope = auth.principal(request).scope
    envelope.expected_version(request, expected)  # a malformed If-Match is refused before anything is read
    found, _ = await _load(request, name)
    try:
        first = decide(found)
    except commands.DomainError as exc:
        raise _problem(exc) from exc
    given: uuid.UUID | None = None
    if fixed_id and isinstance(first, events.ApprovalGranted | events.WaveStarted):
        given = rollout_commands.id_for(first)
    stream = stream_names.name("rollout", name)
    plan = await submission.plan(request, stream, expected, [(given, {})])

    async def decide_all(_state: loading.StreamState) -> list[events.Event]:
        deployment, _ = await _load(request, name)
        try:
            if scope.targets:
                commands.within_scope(name, deployment, scope, await loading.targets(request.app[keys.STORE]))
            return [decide(deployment)]
        except commands.DomainError as exc:
            raise _problem(exc) from exc

    recorded = await submission.write(request, plan, decide_all)
    body: dict[str, Any] = {"deployment": name, "stream": stream,
                            "event": recorded.types[0] if recorded.types else None,
                            "position": recorded.positions[0], "version": recorded.last_version}
    data = recorded.data[0] if recorded.data else {}
    for key in ("revision", "wave", "reason"):
        if key in data:
            body[key] = data[key]
    headers = {"ETag": f'"{recorded.last_version}"'}
    if recorded.replayed:
        headers["Idempotent-Replayed"] = "true"
    return bodies.json_response(body, headers=headers)


@routes.post("/v1/deployments/{name}/approve")
async def approve(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await bodies.read_json(request, ApproveBody)
    principal = auth.principal(request)
    return await _record(request, name, body.expected_version, lambda d: rollout_commands.approve(
        name, d, body.wave, principal.name, admin=principal.role == "admin", reason=body.reason,
        on_behalf_of=auth.on_behalf_of(request)), fixed_id=True)


@routes.post("/v1/deployments/{name}/promote")
async def promote(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await bodies.read_json(request, PromoteBody)
    return await _record(request, name, body.expected_version,
                         lambda d: rollout_commands.promote(name, d, body.wave), fixed_id=True)


@routes.post("/v1/deployments/{name}/halt")
async def halt(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await submission.optional_json(request, HaltBody)
    return await _record(request, name, body.expected_version,
                         lambda d: rollout_commands.halt(name, d, body.reason))


async def resume_if_halted(request: web.Request, name: str) -> web.Response | None:
    """``/resume`` of a deployment whose rollout is halted (and that is not paused): RolloutResumed.
    None when ``/resume`` is the deployment's own (DeploymentResumed)."""
    found, _ = await _load(request, name)
    if not rollout_commands.halted(found):
        return None
    body = await submission.optional_json(request, HaltBody)
    return await _record(request, name, body.expected_version,
                         lambda d: rollout_commands.resume(name, d, body.reason))


@routes.get("/v1/deployments/{name}/rollout")
async def rollout(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    found, stream = await _load(request, name)
    if found is None or not found.revisions:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revisions")
    return bodies.json_response({"deployment": name, "current_revision": found.current_revision,
                                 "position": stream.position, "rollout": waves.view(found.progress)})
