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
        request.app[keys.STORE], request.app[keys.TARGETS], name, timeout=request.app[keys.SETTINGS].db_timeout)
    return state.deployments.get(name), stream


async def record(request: web.Request, name: str, expected: envelope.ExpectedVersion | None,
                 decide: Decide, *, fixed_id: bool = False,
                 metadata: dict[str, Any] | None = None) -> submission.Recorded:
    """Decide on the deployment with its rollout and append to ``rollout-<name>`` (``metadata``: what
    the caller records besides what the request says, such as the web UI's reason)."""
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
    plan = await submission.plan(request, stream, expected, [(given, metadata or {})])

    async def decide_all(_state: loading.StreamState) -> list[events.Event]:
        deployment, _ = await _load(request, name)
        try:
            if scope.targets:
                commands.within_scope(name, deployment, scope, await loading.targets(request.app[keys.STORE], request.app[keys.TARGETS]))
            return [decide(deployment)]
        except commands.DomainError as exc:
            raise _problem(exc) from exc

    return await submission.write(request, plan, decide_all)


def _answer(name: str, recorded: submission.Recorded) -> web.Response:
    body: dict[str, Any] = {"deployment": name, "stream": recorded.stream,
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


# The commands, for the API's routes and the web UI's forms alike.
async def approve_wave(request: web.Request, name: str, wave: str, reason: str,
                       expected: envelope.ExpectedVersion | None = None,
                       metadata: dict[str, Any] | None = None) -> submission.Recorded:
    principal = auth.principal(request)
    return await record(request, name, expected, lambda d: rollout_commands.approve(
        name, d, wave, principal.name, admin=principal.role == "admin", reason=reason,
        on_behalf_of=auth.on_behalf_of(request)), fixed_id=True, metadata=metadata)


async def promote_wave(request: web.Request, name: str, wave: str,
                       expected: envelope.ExpectedVersion | None = None,
                       metadata: dict[str, Any] | None = None) -> submission.Recorded:
    return await record(request, name, expected, lambda d: rollout_commands.promote(name, d, wave),
                        fixed_id=True, metadata=metadata)


async def halt_rollout(request: web.Request, name: str, reason: str,
                       expected: envelope.ExpectedVersion | None = None,
                       metadata: dict[str, Any] | None = None) -> submission.Recorded:
    return await record(request, name, expected, lambda d: rollout_commands.halt(name, d, reason),
                        metadata=metadata)


async def resume_rollout(request: web.Request, name: str, reason: str,
                         expected: envelope.ExpectedVersion | None = None,
                         metadata: dict[str, Any] | None = None) -> submission.Recorded:
    return await record(request, name, expected, lambda d: rollout_commands.resume(name, d, reason),
                        metadata=metadata)


async def halted(request: web.Request, name: str) -> bool:
    """Whether ``/resume`` of ``name`` means its halted rollout rather than the deployment."""
    found, _ = await _load(request, name)
    return rollout_commands.halted(found)


@routes.post("/v1/deployments/{name}/approve")
async def approve(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await bodies.read_json(request, ApproveBody)
    return _answer(name, await approve_wave(request, name, body.wave, body.reason, body.expected_version))


@routes.post("/v1/deployments/{name}/promote")
async def promote(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await bodies.read_json(request, PromoteBody)
    return _answer(name, await promote_wave(request, name, body.wave, body.expected_version))


@routes.post("/v1/deployments/{name}/halt")
async def halt(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await submission.optional_json(request, HaltBody)
    return _answer(name, await halt_rollout(request, name, body.reason, body.expected_version))


async def resume_if_halted(request: web.Request, name: str) -> web.Response | None:
    """``/resume`` of a deployment whose rollout is halted (and that is not paused): RolloutResumed.
    None when ``/resume`` is the deployment's own (DeploymentResumed)."""
    if not await halted(request, name):
        return None
    body = await submission.optional_json(request, HaltBody)
    return _answer(name, await resume_rollout(request, name, body.reason, body.expected_version))


@routes.get("/v1/deployments/{name}/rollout")
async def rollout(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    found, stream = await _load(request, name)
    if found is None or not found.revisions:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revisions")
    return bodies.json_response({"deployment": name, "current_revision": found.current_revision,
                                 "position": stream.position, "rollout": waves.view(found.progress)})
