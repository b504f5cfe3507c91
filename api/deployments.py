"""Deployments: submit a revision, roll back, pause, resume, remove; current state with rollouts.

A revision's manifests arrive as a JSON list (``manifests``), as multi-document YAML text in JSON
(``manifests_yaml``), or as the whole body with a YAML content type (then ``selector``, ``message``
and ``expected_version`` come from the query string; ``?expected_version=`` is honoured with a JSON
body too, and must agree with the body's). A rollout strategy (docs/rollouts.md) comes as ``strategy``
in a JSON body, or as a YAML document whose only key is ``strategy``. They are validated before anything is
recorded; errors name the manifest index and field. The selector is validated too (422 naming
``selector`` and the position); it may be omitted after the first revision to keep the current one.

Freeze windows (docs/freezes.md): a revision or rollback whose matched targets are all frozen is
refused with 409 naming the freezes; an admin may send ``override: {reason}`` (with a YAML body:
``?override_reason=``), recorded in the event, to let it through. ``GET /v1/deployments/{name}``
says of each rollout whether a freeze holds it now (``frozen``: the freezes and until when), by the
applier's own rule (projections/freezerules.py ``shown_frozen``, which the web UI's cells use too).

A revision or rollback that would put an object on a cluster where another active deployment
deploys it is refused with 409 naming the manifest (or ``to_revision``) and that deployment
(projections/sharing.py, docs/guarantees.md "One owner per object").

A JSON body may set the revision's ``progress_deadline_seconds`` (1 to 2^31-1, default 600) and
``self_heal`` (default true), docs/health.md, in the body or (as with a YAML body) the query string.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Final, TypeVar

import msgspec
from aiohttp import web

from api import auth, bodies, envelope, keys, params, problems, reads, rollouts, submission, waiting
from ledger import events
from ledger import rollouts as strategy_types
from ledger import streams as stream_names
from projections import commands, freezerules, loading, manifests, queries, selectors, sharing

routes = web.RouteTableDef()

T = TypeVar("T")
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class OverrideBody(msgspec.Struct, forbid_unknown_fields=True):
    """An admin lets the revision through freeze windows, saying why."""

    reason: str


class RevisionBody(msgspec.Struct, forbid_unknown_fields=True):
    manifests: list[Any] | None = None
    manifests_yaml: str | None = None
    selector: str | None = None
    message: str = ""
    expected_version: envelope.ExpectedVersion | None = None
    strategy: strategy_types.Strategy | None = None
    override: OverrideBody | None = None
    progress_deadline_seconds: events.DEADLINE | None = None
    self_heal: bool | None = None


class RollbackBody(msgspec.Struct, forbid_unknown_fields=True):
    to_revision: Annotated[int, msgspec.Meta(ge=1, le=params.INT32_MAX)]
    message: str = ""
    expected_version: envelope.ExpectedVersion | None = None
    override: OverrideBody | None = None


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""
    expected_version: envelope.ExpectedVersion | None = None


def _stream(name: str) -> str:
    return stream_names.name("deployment", name)


def _query_expected(request: web.Request) -> envelope.ExpectedVersion | None:
    raw = request.query.get("expected_version")
    if raw in ("any", "no_stream", "exists"):
        return raw  # type: ignore[return-value]
    return params.optional(request, "expected_version")


async def _revision_body(request: web.Request) -> RevisionBody:
    if request.content_type in YAML_TYPES:
        raw = await bodies.read_raw(request, allow=YAML_TYPES)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise problems.invalid("body", f"the YAML body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        reason = bodies.query_text(request, "override_reason")
        return RevisionBody(manifests_yaml=text, selector=bodies.query_text(request, "selector"),
                            message=bodies.query_text(request, "message", "") or "",
                            expected_version=_query_expected(request),
                            override=OverrideBody(reason) if reason is not None else None,
                            progress_deadline_seconds=params.optional(request, "progress_deadline_seconds"),
                            self_heal=_query_flag(request, "self_heal"))
    body = await bodies.read_json(request, RevisionBody, free_form=True)
    return msgspec.structs.replace(
        body, expected_version=_agree("expected_version", body.expected_version, _query_expected(request)),
        progress_deadline_seconds=_agree("progress_deadline_seconds", body.progress_deadline_seconds,
                                         params.optional(request, "progress_deadline_seconds")),
        self_heal=_agree("self_heal", body.self_heal, _query_flag(request, "self_heal")))


def _query_flag(request: web.Request, name: str) -> bool | None:
    return reads.flag(request, name) if request.query.get(name, "").strip() else None


def _agree(name: str, in_body: T | None, in_query: T | None) -> T | None:
    """A setting given in the body, the query string or both (then they must agree)."""
    if in_body is not None and in_query is not None and in_body != in_query:
        raise problems.invalid(name, f"the query says {in_query!r}, the body {in_body!r}")
    return in_body if in_body is not None else in_query


def _manifests(body: RevisionBody) -> tuple[list[Any], strategy_types.Strategy | None]:
    """The manifests as sent (the decision validates them, ``commands.submit_revision``) and the
    strategy, from the body or from a YAML document of its own."""
    if (body.manifests is None) == (body.manifests_yaml is None):
        raise problems.invalid("manifests", "send exactly one of manifests (a JSON list) and manifests_yaml "
                                            "(multi-document YAML), or a YAML body")
    if body.manifests is not None:
        return body.manifests, body.strategy
    try:
        documents = manifests.parse_yaml(body.manifests_yaml or "")
    except manifests.ManifestError as exc:
        raise submission.problem_for(exc) from exc
    found = [d for d in documents if isinstance(d, dict) and set(d) == {"strategy"}]
    if not found:
        return documents, body.strategy
    if len(found) > 1 or body.strategy is not None:
        raise problems.invalid("strategy", "give the strategy once (one YAML document, or the body's field)")
    try:
        strategy = msgspec.convert(found[0]["strategy"], strategy_types.Strategy)
    except msgspec.ValidationError as exc:
        raise problems.from_validation(exc, "$.strategy") from exc
    return [d for d in documents if d is not found[0]], strategy


def _override(request: web.Request, override: OverrideBody | None) -> str | None:
    """The override's reason; only an admin may override a freeze (403 for anyone else)."""
    if override is None:
        return None
    if auth.principal(request).role != "admin":
        raise problems.Problem(403, "Forbidden", "only an admin may override a freeze window",
                               field="override", missing="admin")
    return override.reason


async def _admitted(request: web.Request, decided: Any, targets: Any, override: str | None) -> Any:
    """The decided revision past the freeze windows (409 when every target is frozen)."""
    table = await loading.freezes_now(request.app[keys.STORE])
    return freezerules.admit(decided, targets, table, dt.datetime.now(dt.UTC), override)


async def _unshared(request: web.Request, name: str, decided: Any, targets: Any,
                    restored: list[Any] | None = None) -> None:
    """409 when the revision would share an object with another deployment (projections/sharing.py);
    ``restored``: a rollback's manifests, named by its ``to_revision``."""
    found = decided.manifests if restored is None else restored
    timeout = request.app[keys.SETTINGS].db_timeout
    state = await loading.holders(request.app[keys.STORE], name, sharing.names(found), targets, timeout=timeout)
    held = sharing.holdings(state, name)
    if restored is None:
        sharing.check(name, found, decided.matched_targets, held)
    else:
        sharing.check(name, found, decided.matched_targets, held, field="to_revision",
                      what=f"revision {decided.to_revision}'s ")


async def _restores(request: web.Request, name: str, to_revision: int) -> list[Any]:
    """The manifests a rollback to ``to_revision`` restores ([] when there is no such revision)."""
    state = await loading.holders(request.app[keys.STORE], name, [], {}, own=True,
                                  timeout=request.app[keys.SETTINGS].db_timeout)
    return sharing.restored(name, to_revision, state)


def _answer(name: str, written: submission.Written, status: int = 200) -> web.Response:
    body: dict[str, Any] = {
        "deployment": name,
        "stream": written.stream,
        "event": written.type,
        "position": written.position,
        "version": written.version,
    }
    for field in ("revision", "to_revision", "selector", "matched_targets", "reason", "waves"):
        if field in written.data:
            body["rolled_back_to" if field == "to_revision" else field] = written.data[field]
    headers = written.headers()
    if "revision" in written.data:
        headers["Location"] = f"/v1/deployments/{name}/revisions/{written.data['revision']}"
    return bodies.json_response(body, status=status, headers=headers)


@routes.post("/v1/deployments/{name}/revisions")
async def submit(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await _revision_body(request)
    if body.selector is not None:
        try:
            selectors.parse(body.selector)
        except selectors.SelectorError as exc:
            raise submission.problem_for(exc) from exc
    documents, strategy = _manifests(body)
    command = commands.SubmitRevision(
        name, documents, body.selector, body.message, auth.principal(request).scope,
        events.PROGRESS_DEADLINE_SECONDS if body.progress_deadline_seconds is None else body.progress_deadline_seconds,
        True if body.self_heal is None else body.self_heal, strategy)
    override = _override(request, body.override)
    store = request.app[keys.STORE]

    async def decide(state: loading.StreamState) -> Any:
        targets = await loading.targets(store, request.app[keys.TARGETS])
        decided = commands.submit_revision(state.state.deployments.get(name), command, targets)
        await _unshared(request, name, decided, targets)
        return await _admitted(request, decided, targets, override)

    written = await submission.run(request, _stream(name), body.expected_version, decide)
    return _answer(name, written, 201)


async def roll_back_to(request: web.Request, name: str, to_revision: int, message: str,
                       expected_version: envelope.ExpectedVersion | None = None, override: str | None = None,
                       metadata: dict[str, Any] | None = None) -> submission.Written:
    """Roll ``name`` back to ``to_revision`` (the API's handler and the web UI's form both call it);
    ``override``: an admin's reason to override a freeze window."""
    command = commands.RollBack(name, to_revision, message, auth.principal(request).scope)
    store = request.app[keys.STORE]

    async def decide(state: loading.StreamState) -> Any:
        targets = await loading.targets(store, request.app[keys.TARGETS])
        decided = commands.roll_back(state.state.deployments.get(name), command, targets)
        await _unshared(request, name, decided, targets, await _restores(request, name, to_revision))
        return await _admitted(request, decided, targets, override)

    return await submission.run(request, _stream(name), expected_version, decide, metadata)


@routes.post("/v1/deployments/{name}/rollback")
async def roll_back(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await bodies.read_json(request, RollbackBody)
    override = _override(request, body.override)
    written = await roll_back_to(request, name, body.to_revision, body.message, body.expected_version, override)
    return _answer(name, written, 201)


# Pause, resume and remove: a reason in, one command over the deployment's current state.
_Lifecycle = Callable[[str, Any, str], Any]


async def change(request: web.Request, name: str, command: _Lifecycle, reason: str,
                 expected_version: envelope.ExpectedVersion | None = None,
                 metadata: dict[str, Any] | None = None) -> submission.Written:
    """Pause, resume or remove ``name`` (the API's handlers and the web UI's forms both call it)."""
    scope = auth.principal(request).scope
    store = request.app[keys.STORE]

    async def decide(state: loading.StreamState) -> Any:
        deployment = state.state.deployments.get(name)
        if scope.targets:
            commands.within_scope(name, deployment, scope, await loading.targets(store, request.app[keys.TARGETS]))
        return command(name, deployment, reason)

    return await submission.run(request, _stream(name), expected_version, decide, metadata)


async def _lifecycle(request: web.Request, command: _Lifecycle, *, reason_in_query: bool = False) -> web.Response:
    name = reads.name_param(request, "deployment name")
    body = await submission.optional_json(request, ReasonBody)
    reason = (body.reason or bodies.query_text(request, "reason", "") or "") if reason_in_query else body.reason
    return _answer(name, await change(request, name, command, reason, body.expected_version))


@routes.post("/v1/deployments/{name}/pause")
async def pause(request: web.Request) -> web.Response:
    return await _lifecycle(request, commands.pause)


@routes.post("/v1/deployments/{name}/resume")
async def resume(request: web.Request) -> web.Response:
    halted = await rollouts.resume_if_halted(request, reads.name_param(request, "deployment name"))
    return halted if halted is not None else await _lifecycle(request, commands.resume)


@routes.delete("/v1/deployments/{name}")
async def remove(request: web.Request) -> web.Response:
    # DELETE may carry no body: the reason can come as ?reason=.
    return await _lifecycle(request, commands.remove, reason_in_query=True)


@routes.get("/v1/deployments")
async def list_deployments(request: web.Request) -> web.Response:
    include_removed = reads.flag(request, "include_removed")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        return bodies.json_response(await queries.deployments(conn, include_removed=include_removed))


@routes.get("/v1/deployments/{name}")
async def get_deployment(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    revision = params.optional(request, "revision")
    if "wait" in request.query:
        return await waiting.respond(request, name, revision)
    await reads.wait_for_position(request)
    table = await loading.freezes_now(request.app[keys.STORE], timeout=request.app[keys.SETTINGS].db_timeout)
    async with reads.connection(request) as conn:
        found = await queries.deployment(conn, name, table=table, now=dt.datetime.now(dt.UTC))
    if found is None:
        raise problems.Problem(404, "Not found", f"deployment {name} has no revisions (or none projected yet)")
    return bodies.json_response(found, headers={"ETag": f'"{found["version"]}"'})
