"""The event catalogue: every fact the ledger records, as frozen msgspec Structs.

All event types form one tagged union (`Event`, tag field ``type``) decoded by one module-level
decoder, so an unknown type or a wrong or missing field is a validation error naming the field
(msgspec's ``$.path``). Unknown fields are rejected rather than silently dropped.

Schema evolution: a new field always gets a default, so old events still decode. A type whose
meaning really changes gets a new version and an upcast (see ``UPCASTS``) applied before decoding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Final, Literal, Union

import msgspec

from ledger import access


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


class RevisionSubmitted(Event, frozen=True):
    deployment: str
    revision: int
    manifests: list[dict[str, Any]]
    selector: str = ""
    message: str = ""
    matched_targets: list[str] = []
    scope: Scope = Scope()


class RolledBack(Event, frozen=True):
    deployment: str
    revision: int
    to_revision: int
    message: str = ""
    matched_targets: list[str] = []
    scope: Scope = Scope()


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
    revision: int
    target: str
    objects: list[ObjectRef] = []
    pruned: list[ObjectRef] = []
    duration_ms: int = 0
    attempt: int = 1


class ApplyFailed(Event, frozen=True):
    deployment: str
    revision: int
    target: str
    error: str
    attempt: int = 1
    retryable: bool = False
    status: int | None = None
    retry_in_ms: int | None = None


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
    TokenIssued,
    TokenRevoked,
]

TYPES: Final[dict[str, type[Event]]] = {cls.__name__: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined]

# Which stream category each type belongs in, and which data field names the stream's id.
_DATA_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    name: msgspec.json.Decoder(cls) for name, cls in TYPES.items()
}

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
    "TokenIssued": ("token", "name"),
    "TokenRevoked": ("token", "name"),
}

# (type, schema version) -> function turning stored data of that version into the current shape.
UPCASTS: Final[dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = {}

_decoder: Final = msgspec.json.Decoder(AnyEvent)
_encoder: Final = msgspec.json.Encoder()


def decode_json(payload: bytes) -> AnyEvent:
    """Decode ``{"type": ..., **data}`` JSON into its event type."""
    event: AnyEvent = _decoder.decode(payload)
    return event


def from_data(type_: str, data: Any) -> AnyEvent:
    """Validate stored or submitted ``data`` of event ``type_``; raises msgspec.ValidationError."""
    if not isinstance(data, dict):
        raise msgspec.ValidationError("Expected `object`, got `" + type(data).__name__ + "`")
    if "type" in data:
        raise msgspec.ValidationError("Object contains unknown field `type`")
    event: AnyEvent = msgspec.convert({"type": type_, **data}, AnyEvent, strict=True)
    return event


def from_json_data(type_: str, raw: bytes) -> tuple[AnyEvent, dict[str, Any]]:
    """Validate submitted JSON ``data`` of event ``type_``.

    Returns the event and the data as plain JSON values (what gets stored). Raises
    msgspec.ValidationError with paths relative to ``data``, or with ``$.type`` for an unknown type.
    The type's own decoder validates ``raw`` directly (the union's decoder would need the tag
    spliced in first); it is the same Struct, so the rules are the union's.
    """
    decoder = _DATA_DECODERS.get(type_)
    if decoder is None:
        raise msgspec.ValidationError(f"Invalid value {type_!r} - at `$.type`")
    data = msgspec.json.decode(raw)
    if not isinstance(data, dict):
        raise msgspec.ValidationError(f"Expected `object`, got `{type(data).__name__}`")
    if "type" in data:
        raise msgspec.ValidationError("Object contains unknown field `type`")
    event: AnyEvent = decoder.decode(raw)
    return event, data


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
