"""The shapes of response bodies, as msgspec Structs the OpenAPI document is generated from.

Request bodies are documented from the Structs the handlers decode with (api/operations.py names
them); responses are built as plain dicts by the read models (projections/views.py) and the
handlers, so their shapes are written down here once. The fuzz run (tests/test_fuzz.py) holds
every response the live service gives to these schemas, so a field that changes type or disappears
fails the suite. Structs that do not forbid unknown fields document the fields a client may rely on
and allow more.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import msgspec

from ledger import access, events
from projections import fleet, waiting


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details (api/problems.py); ``field`` names the input at fault in msgspec's
    ``$.path`` style where there is one. Some problems add members (e.g. ``expected_version``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


class Health(msgspec.Struct):
    status: str


class NotReady(msgspec.Struct):
    status: str
    reason: str | None = None


class Readiness(msgspec.Struct):
    """``not_ready`` names every component that is not up, with what it is doing and why."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    not_ready: dict[str, NotReady]


class AppendResult(msgspec.Struct):
    stream: str
    positions: list[int]
    first_version: int
    last_version: int


class RecordedEvent(msgspec.Struct):
    position: int
    stream: str
    version: int
    id: uuid.UUID
    type: str
    data: Any
    metadata: dict[str, Any]
    recorded_at: dt.datetime
    prev_hash: str
    hash: str


class StreamPage(msgspec.Struct):
    stream: str
    events: list[RecordedEvent]
    next_from_version: int | None


class EventPage(msgspec.Struct):
    events: list[RecordedEvent]
    next_after: int


class VerifyReport(msgspec.Struct, kw_only=True):
    """``ok`` with the last position checked and its hash, or the first break in the chain."""

    ok: bool
    from_: int = msgspec.field(name="from")
    to: int | None
    checked: int
    position: int | None = None
    hash: str | None = None
    problem: str | None = None
    detail: str | None = None
    expected: str | int | None = None
    found: str | int | None = None


class Digest(msgspec.Struct):
    position: int
    hash: str
    recorded_at: dt.datetime | None


class Hold(msgspec.Struct):
    """The freezes holding a target's rollout, and until when (projections/freezerules.py)."""

    freezes: list[str]
    until: dt.datetime


class Rollout(msgspec.Struct):
    deployment: str
    target: str
    desired_revision: int
    applied_revision: int | None
    state: fleet.RolloutState
    outcome: fleet.Outcome | None
    last_error: str | None
    last_attempt_at: dt.datetime | None
    attempts: int
    objects_applied: int
    health: fleet.Health | None
    reason: str | None
    message: str | None
    # GET /v1/deployments/{name}: present while a freeze holds the target's desired revision.
    frozen: Hold | None = None


class Target(access.Access, frozen=True, kw_only=True):
    """A target with its access fields (ledger.access.Access, defaults included)."""

    name: str
    labels: dict[str, str]
    retired: bool
    version: int
    position: int
    registered_at: dt.datetime | None
    updated_at: dt.datetime | None


class TargetWithRollouts(Target, frozen=True, kw_only=True):
    rollouts: list[Rollout]


class TargetDetail(TargetWithRollouts, frozen=True, kw_only=True):
    as_of: int


class TargetList(msgspec.Struct):
    as_of: int
    targets: list[Target]


class TargetWrite(msgspec.Struct):
    target: str
    stream: str
    event: str | None
    position: int
    version: int
    changed: bool


class Summary(msgspec.Struct):
    targets: int
    pending: int
    applying: int
    progressing: int
    healthy: int
    degraded: int
    failed: int
    paused: int


class Deployment(msgspec.Struct, kw_only=True):
    name: str
    current_revision: int
    selector: str
    paused: bool
    pause_reason: str
    removed: bool
    version: int
    position: int
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    summary: Summary


class DeploymentWithRollouts(Deployment, kw_only=True):
    rollouts: list[Rollout]


class Wait(msgspec.Struct):
    """How a ``?wait=healthy`` ended (api/waiting.py)."""

    result: waiting.Outcome
    revision: int
    timeout_seconds: float


class DeploymentDetail(DeploymentWithRollouts, kw_only=True):
    as_of: int
    wait: Wait | None = None


class DeploymentList(msgspec.Struct):
    as_of: int
    deployments: list[Deployment]


class DeploymentWrite(msgspec.Struct, kw_only=True):
    """What a deployment command recorded; the revision fields come with revisions and rollbacks,
    ``reason`` with pause, resume and removal."""

    deployment: str
    stream: str
    event: str | None
    position: int
    version: int
    revision: int | None = None
    rolled_back_to: int | None = None
    selector: str | None = None
    matched_targets: list[str] | None = None
    reason: str | None = None
    waves: list[WaveMembers] | None = None
    wave: str | None = None  # a halted rollout's /resume


class WaveMembers(msgspec.Struct):
    name: str
    targets: list[str] = []


class RolloutWrite(msgspec.Struct, kw_only=True):
    """What a rollout command (approve, promote, halt, resume) recorded in ``rollout-<name>``."""

    deployment: str
    stream: str
    event: str | None
    position: int
    version: int
    revision: int | None = None
    wave: str | None = None
    reason: str | None = None


class WaveApproval(msgspec.Struct, kw_only=True):
    required: bool
    requested: bool
    by: str | None
    reason: str


class RolloutWave(msgspec.Struct, kw_only=True):
    name: str
    targets: list[str]
    state: Literal["pending", "awaiting-approval", "progressing", "halted", "completed"]
    max_concurrency: int | None
    approval: WaveApproval | None
    started_at: dt.datetime | None
    promoted_by: str | None
    completed_at: dt.datetime | None
    healthy: int
    failing: list[str]
    duration_ms: int | None


class RolloutHalt(msgspec.Struct, kw_only=True):
    wave: str
    reason: str
    failed_targets: list[str]


class RolloutProgress(msgspec.Struct, kw_only=True):
    """A revision's progressive rollout (docs/rollouts.md)."""

    revision: int
    phase: Literal["rolling", "halted", "completed"]
    submitter: str | None
    strategy: dict[str, Any]
    halted: RolloutHalt | None
    completed_at: dt.datetime | None
    waves: list[RolloutWave]


class DeploymentRollout(RolloutProgress, kw_only=True):
    deployment: str


class RolloutState(msgspec.Struct, kw_only=True):
    """``GET /v1/deployments/{name}/rollout``: ``rollout`` is null without a strategy."""

    deployment: str
    current_revision: int
    position: int
    rollout: RolloutProgress | None


class Override(msgspec.Struct):
    """An admin let the revision through freeze windows: why, and the freezes covering its targets then."""

    reason: str
    freezes: list[str]


class Revision(msgspec.Struct, kw_only=True):
    deployment: str
    revision: int
    actor: str | None
    recorded_at: dt.datetime
    message: str
    selector: str
    matched_targets: list[str]
    rolled_back_to: int | None
    position: int
    progress_deadline_seconds: int
    self_heal: bool
    override: Override | None


class RevisionDetail(Revision, kw_only=True):
    manifests: list[dict[str, Any]]


class RevisionPage(msgspec.Struct):
    as_of: int
    deployment: str
    current_revision: int
    revisions: list[Revision]
    next_from_revision: int | None


class Diff(msgspec.Struct, kw_only=True):
    deployment: str
    from_: int = msgspec.field(name="from")
    to: int
    diff: str


class FleetState(msgspec.Struct):
    """The whole fleet at ``position`` (``at`` echoes the query; ``head`` is the log's head then)."""

    at: str
    head: int
    position: int
    recorded_at: dt.datetime | None
    targets: list[TargetWithRollouts]
    deployments: list[DeploymentWithRollouts]
    freezes: list[Freeze]
    rollouts: list[DeploymentRollout] = []


class TokenScope(msgspec.Struct):
    targets: str
    deployments: list[str]


class Token(msgspec.Struct, kw_only=True):
    """A token as the API shows it: never its secret nor its hash."""

    name: str
    role: events.Role
    scope: TokenScope
    expires_at: dt.datetime | None
    fingerprint: str
    state: Literal["active", "expired", "revoked"]
    issued_at: dt.datetime | None
    issued_by: str | None
    revoked_at: dt.datetime | None
    revoked_by: str | None
    version: int


class IssuedToken(Token, kw_only=True):
    """The secret (``token``) is answered once, here, and stored nowhere."""

    token: str


class TokenList(msgspec.Struct):
    tokens: list[Token]


class FreezeWrite(msgspec.Struct):
    freeze: str
    stream: str
    event: str | None
    position: int
    version: int
    changed: bool


class FreezeWindow(msgspec.Struct):
    start: dt.datetime
    end: dt.datetime


class FreezeSchedule(msgspec.Struct, kw_only=True):
    """Either ``cron``, ``duration_seconds`` and ``time_zone``, or ``from`` and ``until``."""

    cron: str | None = None
    duration_seconds: int | None = None
    time_zone: str | None = None
    from_: dt.datetime | None = msgspec.field(default=None, name="from")
    until: dt.datetime | None = None


class Freeze(msgspec.Struct, kw_only=True):
    """A freeze window; ``active``/``window`` say whether it holds now (at the state's time in
    replay), ``targets`` the live targets its selector matches."""

    name: str
    selector: str
    reason: str
    schedule: FreezeSchedule
    removed: bool
    set_by: str | None
    set_at: dt.datetime | None
    removed_by: str | None
    removed_at: dt.datetime | None
    version: int
    position: int
    active: bool
    window: FreezeWindow | None
    next_window: FreezeWindow | None
    targets: list[str]


class FreezeList(msgspec.Struct):
    now: dt.datetime
    freezes: list[Freeze]
