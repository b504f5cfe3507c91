"""What every route of the API is, as data: operation id, request body Struct, response Structs,
parameters with their bounds, and the statuses it can answer. The OpenAPI document (api/openapi.py)
is generated from this table together with the application's router and the policy table.

Like api/policy.py, the table is keyed by (method, route path) and the suite walks the router
against it (tests/test_openapi.py): a route without a row, or a row without a route, fails. The
request bodies are the very Structs the handlers decode with, so the document cannot drift from
what is validated; the statuses and response shapes are held to the live service by the fuzz run
(tests/test_fuzz.py), which fails on any status, content type or body the document does not allow.

Statuses that follow from what an operation is are added by :func:`problem_statuses`, not
repeated per row: 401 and 403 for every route that needs a token (from the policy table), 400,
413, 415 and 422 for every route with a body, 422 for every route with parameters, 503 for every
route that reads or writes the log, 429 for the routes api/lanes.py limits per client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from api import (
    access,
    cloudevents,
    deployments,
    feed,
    freezes,
    params,
    rollouts,
    schemas,
    streams,
    targets,
    tokens,
)
from ledger import streams as stream_names

JSON: Final = ("application/json",)
YAML: Final = deployments.YAML_TYPES

Where = Literal["query", "header", "path"]


@dataclass(frozen=True)
class Param:
    name: str
    where: Where
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A request body: the Struct the handler decodes, under each media type it accepts
    (``raw`` media types carry the body as text, like a YAML revision)."""

    struct: type
    required: bool = True
    raw: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A success response: a JSON schema type per media type (None: text, not JSON)."""

    description: str
    content: dict[str, type | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    id: str
    summary: str
    tag: str
    replies: dict[int, Reply]
    problems: frozenset[int] = frozenset()
    body: Body | None = None
    params: tuple[Param, ...] = ()
    uses_store: bool = True


def bounded(bound: params.Bound) -> dict[str, Any]:
    """The JSON Schema of an integer within ``bound``: the bounds are api/params.py's, which the
    handlers enforce (tests/test_openapi.py holds every route's parameters to them)."""
    return {"type": "integer", "minimum": bound.low, "maximum": bound.high}


def integer(name: str, bound: params.Bound, description: str, where: Where = "query") -> Param:
    return Param(name, where, bounded(bound), description, required=where == "path")


def text(name: str, description: str, where: Where = "query", **schema: Any) -> Param:
    return Param(name, where, {"type": "string", **schema}, description, required=where == "path")


_DNS_LABEL: Final = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
PATH_PARAMS: Final[dict[str, Param]] = {
    "stream": Param("stream", "path", {"type": "string"}, "``<category>-<id>``, category one of "
                    + ", ".join(sorted(stream_names.CATEGORIES)) + "; the id a lower-case DNS-1123 label",
                    required=True),
    "name": Param("name", "path", {"type": "string", "pattern": _DNS_LABEL},
                  "a lower-case DNS-1123 label", required=True),
    "number": integer("number", params.REVISION, "a revision number", where="path"),
}

FLAG: Final = {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}
MIN_POSITION: Final = Param(
    "min_position", "query", {"anyOf": [bounded(params.POSITION),
                                        {"type": "string", "enum": ["head"]}]},
    "wait until the read models have folded this log position (or the head when the request "
    "arrived); 504 if they do not within the read wait timeout")
CONSISTENCY: Final = Param(
    "consistency", "query", {"type": "string", "enum": ["strong", "eventual"]},
    "strong (the default): wait until the read models hold every write acknowledged before the "
    "request; eventual: the read models as they are")
IF_MATCH: Final = text("If-Match", 'the expected version of the stream, as an entity tag: "3", or * '
                       "(the stream exists); must agree with expected_version", where="header")
IDEMPOTENCY_KEY: Final = text("Idempotency-Key", "1 to 255 characters; a retry with the same key is "
                              "answered with the first result and writes nothing", where="header",
                              minLength=1, maxLength=255)
X_ACTOR: Final = text("X-Actor", "recorded as on_behalf_of: whom the token's holder acts for",
                      where="header")
WRITE_HEADERS: Final = (IF_MATCH, IDEMPOTENCY_KEY, X_ACTOR)
# Every operation takes and answers a request id (api/access.py); api/openapi.py adds both to each.
REQUEST_ID: Final = text(access.HEADER, f"a correlation id recorded as request_id in the access log and in "
                         f"the metadata of every event the request writes; used when it matches "
                         f"^{access.PATTERN}$, else the service makes one (never refused)", where="header")
REQUEST_ID_HEADER: Final[dict[str, Any]] = {
    "description": "the request's id: the one sent when it was usable, else one the service made",
    "required": True, "schema": {"type": "string", "pattern": f"^{access.PATTERN}$"}}
TYPES: Final = text("types", "event types, comma-separated or repeated")
CATEGORY: Final = text("category", "stream categories, comma-separated or repeated")
AFTER: Final = integer("after", params.POSITION, "the position after which to start")
PAGE: Final = integer("limit", params.PAGE, "events per page")
WAIT: Final = text("wait", "healthy: answer once every target of the revision is healthy, one is degraded "
                   "or failed, the revision is superseded or the deployment removed, or the timeout "
                   "passes; the body's wait.result says which (api/waiting.py)", enum=["healthy"])
WAIT_TIMEOUT: Final = text("timeout", "with wait: how long to wait, e.g. 90s, 10m or plain seconds "
                           "(default 60 s; at most the service's wait_timeout_max, 300 s unless "
                           "configured; more is 422)", pattern=r"^\s*[0-9]+(\.[0-9]+)?[smhSMH]?\s*$")
READ_MODEL: Final = frozenset({504})
WRITE: Final = frozenset({409})


def _one(schema: type, description: str = "OK") -> Reply:
    return Reply(description, {"application/json": schema})


TARGET_WRITE: Final = _one(schemas.TargetWrite, "recorded (or nothing to record: changed is false)")
DEPLOYMENT_WRITE: Final = _one(schemas.DeploymentWrite, "recorded")
ROLLOUT_WRITE: Final = _one(schemas.RolloutWrite, "recorded")

OPERATIONS: Final[dict[tuple[str, str], Operation]] = {
    ("GET", "/healthz"): Operation(
        "healthz", "Liveness: the process answers", "operations",
        {200: _one(schemas.Health, "alive")}, uses_store=False),
    ("GET", "/readyz"): Operation(
        "readyz", "Readiness: the database answers and the notifier listens", "operations",
        {200: _one(schemas.Readiness, "ready"), 503: _one(schemas.Readiness, "not ready (Retry-After)")},
        uses_store=False),
    ("GET", "/metrics"): Operation(
        "metrics", "Prometheus text exposition", "operations",
        {200: Reply("metrics", {"text/plain": None})}, uses_store=False),
    ("GET", "/openapi.json"): Operation(
        "openapi", "This document (OpenAPI 3.1)", "operations",
        {200: Reply("the document", {"application/json": dict})}, uses_store=False),
    ("GET", "/api"): Operation(
        "reference", "The browsable API reference (an HTML page that renders this document)", "operations",
        {200: Reply("the page", {"text/html": None})}, uses_store=False),
    ("GET", "/api/assets/{asset}"): Operation(
        "reference_asset", "A script or style sheet of the API reference page", "operations",
        {200: Reply("the asset", {"text/css": None, "text/javascript": None})},
        frozenset({404}), params=(text("asset", "the asset's file name", where="path"),), uses_store=False),
    ("POST", "/v1/streams/{stream}/events"): Operation(
        "append_events", "Append events to a stream (admin; domain events are decided like their commands)",
        "log", {201: _one(schemas.AppendResult, "appended (or an idempotent retry: Idempotent-Replayed)")},
        WRITE | {404}, Body(streams.AppendBody), WRITE_HEADERS),
    ("GET", "/v1/streams/{stream}"): Operation(
        "read_stream", "Read a stream's events by version", "log", {200: _one(schemas.StreamPage)},
        frozenset({404}), params=(integer("from_version", params.VERSION, "the first version to read"), PAGE)),
    ("GET", "/v1/events"): Operation(
        "read_events", "Read the global log by position", "log", {200: _one(schemas.EventPage)},
        params=(AFTER, PAGE, TYPES, CATEGORY)),
    ("GET", "/v1/feed"): Operation(
        "feed", "The log as pages of CloudEvents (or export ndjson), cursor-paged with Link rel=next", "feed",
        {200: Reply("a page", {cloudevents.BATCH_CONTENT_TYPE: list[cloudevents.CloudEvent], feed.NDJSON: None}),
         304: Reply("an immutable page the client holds (If-None-Match)")},
        params=(AFTER, integer("limit", params.PAGE, "events per page"),
                integer("until", params.POSITION, "the last position of a closed range"), TYPES, CATEGORY,
                text("If-None-Match", "the ETag of a full page already held", where="header"))),
    ("GET", "/v1/feed/live"): Operation(
        "feed_live", "The log as Server-Sent Events from a cursor to the live head and on", "feed",
        {200: Reply("an endless event stream", {"text/event-stream": None})},
        params=(AFTER, TYPES, CATEGORY,
                integer("Last-Event-ID", params.POSITION, "the position to resume after (what EventSource sends)", where="header"))),
    ("GET", "/v1/verify"): Operation(
        "verify", "Recompute the hash chain over a range of positions", "audit",
        {200: _one(schemas.VerifyReport, "the verdict, a broken chain included")},
        params=(integer("from", params.POSITION_FROM_1, "the first position"),
                integer("to", params.POSITION_FROM_1, "the last position (default: the head)"))),
    ("GET", "/v1/digest"): Operation(
        "digest", "The head of the log and its hash, to prove history later", "audit",
        {200: _one(schemas.Digest)}),
    ("GET", "/v1/state"): Operation(
        "state", "The whole fleet as it was at a position or time (audit replay)", "audit",
        {200: _one(schemas.FleetState)},
        params=(Param("at", "query", {"anyOf": [bounded(params.POSITION), {"type": "string"}]},
                      "a log position, head, or an RFC 3339 time with an offset"),)),
    ("PUT", "/v1/targets/{name}"): Operation(
        "put_target", "Register a target (201) or update it (200)", "targets",
        {201: TARGET_WRITE, 200: TARGET_WRITE}, WRITE, Body(targets.TargetBody), WRITE_HEADERS),
    ("DELETE", "/v1/targets/{name}"): Operation(
        "retire_target", "Retire a target", "targets", {200: TARGET_WRITE},
        WRITE | {404}, Body(targets.RetireBody, required=False), WRITE_HEADERS),
    ("GET", "/v1/targets"): Operation(
        "list_targets", "Targets, filtered by a label selector", "targets", {200: _one(schemas.TargetList)},
        READ_MODEL, params=(text("selector", "a Kubernetes label selector, e.g. region=eu"),
                            Param("include_retired", "query", FLAG, "list retired targets too"), MIN_POSITION, CONSISTENCY)),
    ("GET", "/v1/targets/{name}"): Operation(
        "get_target", "A target with its rollouts", "targets", {200: _one(schemas.TargetDetail)},
        READ_MODEL | {404}, params=(MIN_POSITION, CONSISTENCY)),
    ("POST", "/v1/deployments/{name}/revisions"): Operation(
        "submit_revision", "Submit a revision: manifests (JSON list, YAML text, or a YAML body) and a selector",
        "deployments", {201: DEPLOYMENT_WRITE}, WRITE | {404},
        Body(deployments.RevisionBody, raw=YAML),
        (*WRITE_HEADERS,
         text("selector", "with a YAML body: the label selector"),
         text("message", "with a YAML body: the message"),
         text("override_reason", "with a YAML body: an admin's reason to let the revision through freezes"),
         Param("expected_version", "query",
               {"anyOf": [bounded(params.EXPECTED_VERSION),
                          {"type": "string", "enum": ["any", "no_stream", "exists"]}]},
               "with a YAML body: the expected version"),
         integer("progress_deadline_seconds", params.DEADLINE,
                 "seconds a target may take to become healthy (default 600); must agree with the body's"),
         Param("self_heal", "query", FLAG, "heal drift (default true); must agree with the body's"))),
    ("POST", "/v1/deployments/{name}/rollback"): Operation(
        "roll_back", "Record a new revision restoring an earlier one's manifests", "deployments",
        {201: DEPLOYMENT_WRITE}, WRITE | {404}, Body(deployments.RollbackBody), WRITE_HEADERS),
    ("POST", "/v1/deployments/{name}/pause"): Operation(
        "pause", "Pause a deployment (the applier leaves it alone)", "deployments", {200: DEPLOYMENT_WRITE},
        WRITE | {404}, Body(deployments.ReasonBody, required=False), WRITE_HEADERS),
    ("POST", "/v1/deployments/{name}/resume"): Operation(
        "resume", "Resume a paused deployment, or else a halted rollout (then the reply is a rollout "
        "write)", "deployments", {200: DEPLOYMENT_WRITE},
        WRITE | {404}, Body(deployments.ReasonBody, required=False), WRITE_HEADERS),
    ("POST", "/v1/deployments/{name}/approve"): Operation(
        "approve_wave", "Approve a wave of the current revision's rollout (approver or admin; never the "
        "submitter's own, unless admin)", "rollouts", {200: ROLLOUT_WRITE}, WRITE | {404},
        Body(rollouts.ApproveBody), WRITE_HEADERS),
    ("POST", "/v1/deployments/{name}/promote"): Operation(
        "promote_wave", "Start the next wave now, ending its soak early", "rollouts", {200: ROLLOUT_WRITE},
        WRITE | {404}, Body(rollouts.PromoteBody), WRITE_HEADERS),
    ("POST", "/v1/deployments/{name}/halt"): Operation(
        "halt_rollout", "Halt the current revision's rollout (no further wave starts)", "rollouts",
        {200: ROLLOUT_WRITE}, WRITE | {404}, Body(rollouts.HaltBody, required=False), WRITE_HEADERS),
    ("GET", "/v1/deployments/{name}/rollout"): Operation(
        "get_rollout", "The current revision's rollout: waves, approvals, health, halts", "rollouts",
        {200: _one(schemas.RolloutState)}, frozenset({404})),
    ("DELETE", "/v1/deployments/{name}"): Operation(
        "remove_deployment", "Remove a deployment (the applier prunes it everywhere)", "deployments",
        {200: DEPLOYMENT_WRITE}, WRITE | {404}, Body(deployments.ReasonBody, required=False),
        (*WRITE_HEADERS, text("reason", "why (when there is no body)"))),
    ("GET", "/v1/deployments"): Operation(
        "list_deployments", "Deployments with a summary of their rollouts", "deployments",
        {200: _one(schemas.DeploymentList)}, READ_MODEL,
        params=(Param("include_removed", "query", FLAG, "list removed deployments too"), MIN_POSITION, CONSISTENCY)),
    ("GET", "/v1/deployments/{name}"): Operation(
        "get_deployment", "A deployment with its rollout on every target; with ?wait=healthy, once its "
        "rollout is over", "deployments",
        {200: _one(schemas.DeploymentDetail)}, READ_MODEL | {404},
        params=(MIN_POSITION, CONSISTENCY, WAIT, WAIT_TIMEOUT,
                integer("revision", params.REVISION, "with wait: the revision to wait for (default: the current one)"))),
    ("GET", "/v1/deployments/{name}/revisions"): Operation(
        "list_revisions", "A deployment's history: who deployed what, when and why", "deployments",
        {200: _one(schemas.RevisionPage)}, READ_MODEL | {404},
        params=(integer("from_revision", params.REVISION, "the first revision"),
                integer("limit", params.PAGE, "revisions per page"), MIN_POSITION, CONSISTENCY)),
    ("GET", "/v1/deployments/{name}/revisions/{number}"): Operation(
        "get_revision", "One revision with its manifests (JSON, or YAML when preferred)", "deployments",
        {200: Reply("the revision", {"application/json": schemas.RevisionDetail, "application/yaml": None})},
        READ_MODEL | {404}, params=(MIN_POSITION, CONSISTENCY)),
    ("GET", "/v1/deployments/{name}/diff"): Operation(
        "diff", "Unified diff of two revisions' manifests (JSON, or text when preferred)", "deployments",
        {200: Reply("the diff", {"application/json": schemas.Diff, "text/plain": None})}, READ_MODEL | {404},
        params=(integer("from", params.REVISION, "the older revision (default: to - 1)"),
                integer("to", params.REVISION, "the newer revision (default: the current one)"), MIN_POSITION, CONSISTENCY)),
    ("POST", "/v1/tokens"): Operation(
        "issue_token", "Issue an access token; its secret is answered once", "tokens",
        {201: _one(schemas.IssuedToken, "issued")}, WRITE, Body(tokens.IssueBody), (X_ACTOR,)),
    ("GET", "/v1/tokens"): Operation(
        "list_tokens", "Every token (never a secret)", "tokens", {200: _one(schemas.TokenList)},
        uses_store=False),
    ("GET", "/v1/tokens/{name}"): Operation(
        "get_token", "One token (never its secret)", "tokens", {200: _one(schemas.Token)},
        frozenset({404}), uses_store=False),
    ("DELETE", "/v1/tokens/{name}"): Operation(
        "revoke_token", "Revoke a token", "tokens", {200: _one(schemas.Token, "revoked")}, WRITE | {404},
        Body(tokens.RevokeBody, required=False), (X_ACTOR,)),
    ("PUT", "/v1/freezes/{name}"): Operation(
        "put_freeze", "Set a freeze window (201 new, 200 changed or unchanged): no new revision reaches "
        "the targets it covers while it holds", "freezes",
        {201: _one(schemas.FreezeWrite, "set"), 200: _one(schemas.FreezeWrite, "changed (or nothing to record)")},
        WRITE, Body(freezes.FreezeBody), WRITE_HEADERS),
    ("DELETE", "/v1/freezes/{name}"): Operation(
        "remove_freeze", "Remove a freeze window (held revisions then proceed)", "freezes",
        {200: _one(schemas.FreezeWrite, "removed")}, WRITE | {404}, Body(freezes.RemoveBody, required=False),
        (*WRITE_HEADERS, text("reason", "why (when there is no body)"))),
    ("GET", "/v1/freezes"): Operation(
        "list_freezes", "Freeze windows: whether each holds now, its next window, the targets it covers",
        "freezes", {200: _one(schemas.FreezeList)},
        params=(Param("include_removed", "query", FLAG, "list removed freezes too"),)),
}


def operation(method: str, path: str) -> Operation | None:
    return OPERATIONS.get(("GET" if method == "HEAD" else method, path))


def path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def problem_statuses(op: Operation, *, needs_token: bool, path: str, lane: str = "cheap") -> set[int]:
    """Every error status ``op`` can answer (as problem+json); see the module docstring. ``lane``
    is how api/lanes.py serves the route: expensive requests and live streams are limited per
    client (429) and expensive ones wait a bounded time for a turn (503)."""
    found = set(op.problems)
    if lane != "cheap":
        found |= {429, 503}
    if needs_token:
        found |= {401, 403}
    if op.body is not None:
        found |= {400, 413, 415, 422}
    if op.params or path_params(path):
        found.add(422)
    if op.uses_store:
        found.add(503)
    return found
