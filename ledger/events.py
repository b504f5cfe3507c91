"""The event catalogue: every fact the ledger records, as frozen msgspec Structs, and the one way
to decode an event's data.

Every type is a tagged Struct (tag field ``type``, the class name) in the union ``AnyEvent``. The log
stores the type beside the data, so data is decoded by the decoder of its type, looked up in
``TYPES``: :func:`decode` is what the API (checking a submission), the folds (projections/fleet.py)
and the applier (handlers/tracking.py) call, so the three can never disagree about what an event
says. Its failures are types of their own: :class:`UnknownType` for a type the catalogue does not
hold, :class:`InvalidData` for data that is not that type's (``path`` is msgspec's ``$.path``).
Unknown fields are rejected rather than silently dropped.

Numeric fields carry the bounds of the read-model columns they end up in (``REVISION``: PostgreSQL
``integer``), so every event that decodes can be folded and stored by every projection; a value
beyond them is refused when it is submitted and, if it were ever in the log, would not decode.

Schema evolution: a new field always gets a default, so old events still decode. A type whose
meaning really changes gets a new type name (``RevisionSubmittedV2``); an upcast from the old shape,
if one is ever needed, belongs in :func:`decode`, the one place every reader passes through.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from ledger import access, errors, rollouts

INT32_MAX: Final = 2**31 - 1
# A revision number as the read models store it (integer columns); 0 is the applier's "pruned".
REVISION = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
COUNT = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
# How long a revision may take to become healthy on a target after its apply succeeded (seconds).
DEADLINE = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
PROGRESS_DEADLINE_SECONDS: Final = 600


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Shared configuration: immutable, strict, compact."""


class ObjectRef(Base, frozen=True):
    """One Kubernetes object, as named in apply outcomes."""

    api_version: str = msgspec.field(name="apiVersion")
    kind: str
    name: str
    namespace: str | None = None


class Metadata(Base, frozen=True):
    """Who and why: stored beside every event, never part of its domain data."""

    actor: str | None = None
    reason: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    request_id: str | None = None
    client: str | None = None
    # Who the actor says it acts for (``X-Actor``, e.g. the person behind a CI bot): a claim, never
    # the actor, which is the name of the token that authenticated the request.
    on_behalf_of: str | None = None
    # SHA-256 of the request that recorded the event (api/idempotency.py), kept when it carried an
    # Idempotency-Key or event ids, so a retry can be told from a reuse of the key for another request.
    request_hash: str | None = None


class Event(Base, frozen=True, tag_field="type", tag=True):
    """Base of every event type; the class name is the ``type`` tag."""


class TargetSpec(Event, access.Access, frozen=True, kw_only=True):
    """What registering and updating a target both say (not an event type of its own): its name,
    its labels and how it is reached (the access fields, defined once in ledger.access)."""

    target: str
    labels: dict[str, str] = {}


class TargetRegistered(TargetSpec, frozen=True):
    pass


class TargetUpdated(TargetSpec, frozen=True):
    pass


class TargetRetired(Event, frozen=True):
    target: str


Role = Literal["viewer", "deployer", "approver", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "deployer", "approver", "admin")


class Scope(Base, frozen=True):
    """Where a token may act: targets its selector matches, deployments one of its globs matches.

    Empty means unlimited. A revision submitted under a scope records it, and the targets it reaches
    are those both its selector and ``targets`` match, whatever labels change later.
    """

    targets: str = ""
    deployments: list[str] = []


class FreezeOverride(Base, frozen=True):
    """An admin let a revision through freeze windows (docs/freezes.md): why, and which freezes
    covered its matched targets when it was submitted (for the record; it passes every freeze)."""

    reason: str
    freezes: list[str] = []


class RevisionSubmitted(Event, frozen=True):
    deployment: str
    revision: REVISION
    manifests: list[dict[str, Any]]
    selector: str = ""
    message: str = ""
    matched_targets: list[str] = []
    scope: Scope = Scope()
    # Health (docs/health.md): a target still not healthy this long after its apply succeeded is
    # recorded degraded; with self_heal false, drift is reported and left alone.
    progress_deadline_seconds: DEADLINE = PROGRESS_DEADLINE_SECONDS
    self_heal: bool = True
    override: FreezeOverride | None = None
    # Progressive rollouts (docs/rollouts.md): the strategy as submitted, the waves decided from it.
    strategy: rollouts.Strategy | None = None
    waves: list[rollouts.WaveMembers] = []


class RolledBack(Event, frozen=True):
    deployment: str
    revision: REVISION
    to_revision: REVISION
    message: str = ""
    matched_targets: list[str] = []
    scope: Scope = Scope()
    override: FreezeOverride | None = None
    strategy: rollouts.Strategy | None = None
    waves: list[rollouts.WaveMembers] = []


class DeploymentPaused(Event, frozen=True):
    deployment: str
    reason: str = ""


class DeploymentResumed(Event, frozen=True):
    deployment: str
    reason: str = ""


class DeploymentRemoved(Event, frozen=True):
    deployment: str
    reason: str = ""


class ApplySucceeded(Event, frozen=True):
    deployment: str
    revision: REVISION
    target: str
    objects: list[ObjectRef] = []
    pruned: list[ObjectRef] = []
    duration_ms: int = 0
    attempt: COUNT = 1


class ApplyFailed(Event, frozen=True):
    """``reason`` names a failure the ledger itself decided on (``SharedResource``: an object another
    deployment owns, docs/applier.md); empty for the cluster's own errors."""

    deployment: str
    revision: REVISION
    target: str
    error: str
    attempt: COUNT = 1
    retryable: bool = False
    status: int | None = None
    retry_in_ms: int | None = None
    reason: str = ""


class TargetHealthy(Event, frozen=True):
    """Every object the target's apply touched is current (projections/health.py), ``duration_ms``
    after that apply was recorded. ``attempt`` is the apply attempt followed, ``sequence`` counts
    the health events recorded for that attempt (ids: handlers/outcomes.py)."""

    deployment: str
    revision: REVISION
    target: str
    objects: list[ObjectRef] = []
    duration_ms: COUNT = 0
    attempt: COUNT = 1
    sequence: COUNT = 1


class TargetDegraded(Event, frozen=True):
    """An object failed (``reason`` is the rule's, e.g. ProgressDeadlineExceeded), or the
    revision's progress deadline passed while one was still progressing (reason
    ``ProgressDeadline``)."""

    deployment: str
    revision: REVISION
    target: str
    object: ObjectRef
    reason: str
    message: str = ""
    attempt: COUNT = 1
    sequence: COUNT = 1


class DriftDetected(Event, frozen=True):
    """A live object differs from what the ledger applied (``fields``: the paths that differ)."""

    deployment: str
    revision: REVISION
    target: str
    object: ObjectRef
    fields: list[str] = []


class WaveStarted(Event, frozen=True):
    deployment: str
    revision: REVISION
    wave: str
    targets: list[str] = []


class WaveCompleted(Event, frozen=True):
    deployment: str
    revision: REVISION
    wave: str
    healthy: COUNT = 0
    duration_ms: COUNT = 0


class ApprovalRequested(Event, frozen=True):
    deployment: str
    revision: REVISION
    wave: str


class ApprovalGranted(Event, frozen=True):
    deployment: str
    revision: REVISION
    wave: str
    by: str
    reason: str = ""


class RolloutHalted(Event, frozen=True):
    deployment: str
    revision: REVISION
    wave: str = ""
    failed_targets: list[str] = []
    reason: str = ""


class RolloutResumed(Event, frozen=True):
    deployment: str
    revision: REVISION
    wave: str = ""
    reason: str = ""


class RolloutCompleted(Event, frozen=True):
    deployment: str
    revision: REVISION
    duration_ms: COUNT = 0


class RolloutSuperseded(Event, frozen=True):
    deployment: str
    revision: REVISION
    by_revision: REVISION


class TokenIssued(Event, frozen=True):
    """An access token came into being. Never the secret: ``secret_sha256`` is the SHA-256 of a
    256-bit random secret (see docs/security.md for why it may be public), ``fingerprint`` its
    first characters, to tell tokens apart in listings."""

    name: str
    role: Role
    secret_sha256: str
    fingerprint: str
    scope: Scope = Scope()
    expires_at: dt.datetime | None = None


class TokenRevoked(Event, frozen=True):
    name: str
    reason: str = ""


class FreezeSchedule(Base, frozen=True):
    """When a freeze holds: a recurring window (``cron`` in ``time_zone``, each opening lasting
    ``duration_seconds``) or one window ``[from, until)``. One Struct with optional fields rather than
    a union (msgspec unions hold one untagged Struct at most); the API admits exactly one shape
    (projections/freezes.py)."""

    cron: str | None = None
    duration_seconds: Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)] | None = None
    time_zone: str | None = None
    from_: dt.datetime | None = msgspec.field(default=None, name="from")
    until: dt.datetime | None = None


class FreezeSet(Event, frozen=True):
    """A freeze window was set (created or replaced) under ``name``."""

    name: str
    schedule: FreezeSchedule
    selector: str = ""
    reason: str = ""


class FreezeRemoved(Event, frozen=True):
    name: str
    reason: str = ""


AnyEvent = Union[  # noqa: UP007 - the union is also used at runtime
    TargetRegistered,
    TargetUpdated,
    TargetRetired,
    RevisionSubmitted,
    RolledBack,
    DeploymentPaused,
    DeploymentResumed,
    DeploymentRemoved,
    ApplySucceeded,
    ApplyFailed,
    TargetHealthy,
    TargetDegraded,
    DriftDetected,
    TokenIssued,
    TokenRevoked,
    FreezeSet,
    FreezeRemoved,
    WaveStarted,
    WaveCompleted,
    ApprovalRequested,
    ApprovalGranted,
    RolloutHalted,
    RolloutResumed,
    RolloutCompleted,
    RolloutSuperseded,
]

TYPES: Final[dict[str, type[Event]]] = {cls.__name__: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined]

# One decoder per type: stored data is decoded straight into its class, without splicing the tag in.
_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    name: msgspec.json.Decoder(cls) for name, cls in TYPES.items()
}

# Which stream category each type belongs in, and which data field names the stream's id.
CATEGORY: Final[dict[str, tuple[str, str]]] = {
    "TargetRegistered": ("target", "target"),
    "TargetUpdated": ("target", "target"),
    "TargetRetired": ("target", "target"),
    "RevisionSubmitted": ("deployment", "deployment"),
    "RolledBack": ("deployment", "deployment"),
    "DeploymentPaused": ("deployment", "deployment"),
    "DeploymentResumed": ("deployment", "deployment"),
    "DeploymentRemoved": ("deployment", "deployment"),
    "ApplySucceeded": ("rollout", "deployment"),
    "ApplyFailed": ("rollout", "deployment"),
    "TargetHealthy": ("rollout", "deployment"),
    "TargetDegraded": ("rollout", "deployment"),
    "DriftDetected": ("rollout", "deployment"),
    "TokenIssued": ("token", "name"),
    "TokenRevoked": ("token", "name"),
    "FreezeSet": ("freeze", "name"),
    "FreezeRemoved": ("freeze", "name"),
    **{name: ("rollout", "deployment") for name in (
        "WaveStarted", "WaveCompleted", "ApprovalRequested", "ApprovalGranted", "RolloutHalted",
        "RolloutResumed", "RolloutCompleted", "RolloutSuperseded")},
}

# Types whose data holds free-form JSON (manifests): a key repeated in one of its objects is refused
# rather than resolved silently to the last value.
FREE_FORM: Final = frozenset({"RevisionSubmitted"})

_encoder: Final = msgspec.json.Encoder()
_AT: Final = " - at `"


class DecodeError(errors.LedgerError):
    """Data that is not an event of the catalogue."""


class UnknownType(DecodeError):
    def __init__(self, type_: str) -> None:
        self.type = type_
        super().__init__(f"unknown event type {type_!r}; known: {', '.join(sorted(TYPES))}")


class InvalidData(DecodeError):
    """``path`` is where in the data (``$`` is the data itself); ``reason`` says what is wrong."""

    def __init__(self, type_: str, path: str, reason: str) -> None:
        self.type = type_
        self.path = path
        self.reason = reason
        super().__init__(f"{type_} data at {path}: {reason}")


def decode(type_: str, data: bytes | str) -> AnyEvent:
    """The event of type ``type_`` whose data is the JSON object text ``data``.

    Raises :class:`UnknownType` or :class:`InvalidData` (with the cause chained)."""
    decoder = _DECODERS.get(type_)
    if decoder is None:
        raise UnknownType(type_)
    try:
        event: AnyEvent = decoder.decode(data)
    except msgspec.ValidationError as exc:
        # msgspec reports "<reason> - at `$.path`" (no suffix when the fault is the object itself).
        message = str(exc)
        reason, at, path = message.rpartition(_AT)
        if not at:
            raise InvalidData(type_, "$", message) from exc
        raise InvalidData(type_, path.rstrip("`"), reason) from exc
    except msgspec.DecodeError as exc:
        raise InvalidData(type_, "$", f"not JSON: {exc}") from exc
    return event


def to_data(event: Event) -> dict[str, Any]:
    """The event's data as stored: every field but the ``type`` tag."""
    raw: dict[str, Any] = msgspec.to_builtins(event)
    raw.pop("type", None)
    return raw


def type_name(event: Event) -> str:
    return type(event).__name__


def metadata_from(raw: Any) -> Metadata:
    return msgspec.convert(raw or {}, Metadata, strict=True)


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)
