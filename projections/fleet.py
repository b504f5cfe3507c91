"""The fleet fold: the one definition of derived state, ``fleet = apply(fleet, event, meta)``.

Everything that shows current or past state folds events through here: the projector that keeps the
read-model tables, the point-in-time replay behind ``/v1/state?at=``, the command handlers that load
a stream before deciding, and the applier. One fold means the read models, a replay and the applier
can never disagree about what an event means.

Decisions:

- **In place.** ``apply`` mutates ``fleet`` and returns the same object: a rebuild folds a million
  events, and copying state per event would dominate. Keep an old state with :func:`copy`. The fold
  does no I/O and never reads the clock: ``Meta`` carries everything that is not in the event.
- **Memory.** A revision keeps its manifests as compact JSON bytes, not parsed objects
  (:func:`manifests_at` parses on demand). A rollback revision shares the bytes of the revision it
  restores, and a revision whose manifests, selector or matched targets equal its predecessor's
  shares those objects too. A rollout keeps counts, not copies of what was applied.
- **Rollback restores the whole revision**: the manifests *and* the selector of ``to_revision``,
  because a revision is the unit of history (as a commit is in git); its scope too, narrowed further
  by the scope of the token that rolled back.
- **Scope**: a revision submitted with a scoped token records the token's target selector
  (``scope``); the targets it reaches are those its selector *and* its scope match
  (:func:`targeting`), so relabelling a target into the selector never carries the revision beyond
  the scope.
- **Rollouts** exist for exactly the targets the current selector matches (retired ones excluded)
  while the deployment has a revision and is not removed. A target that stops matching loses its
  rollout (the applier prunes it there); one that starts matching gets a pending rollout. Outcomes
  for a target without a rollout change nothing.
- **Rollout state** concerns the desired (current) revision: ``pending`` until an outcome for it is
  recorded; ``progressing`` after ApplySucceeded, until the applier has followed the objects to a
  verdict: ``healthy`` after TargetHealthy, ``degraded`` after TargetDegraded (the later of the two
  wins; a new successful apply of the revision, such as a healed drift, is followed anew and so
  is ``progressing`` again, and a verdict about an earlier attempt no longer counts); ``applying`` after a retryable ApplyFailed (the applier is retrying);
  ``failed`` after a permanent one; ``paused`` whatever the outcome while the deployment is paused.
  ``reason`` and ``message`` are those of the last degraded or failed state of the revision (a
  failed apply's reason is its ApplyFailed ``reason``, such as ``SharedResource``, else ``ApplyFailed``; kept
  once healthy again, cleared by a new revision). ``applied_revision`` is what the target last
  applied successfully, whichever revision. Health events of another revision change nothing.
- **A revision's health settings** (``progress_deadline_seconds``, ``self_heal``) are the
  revision's; a rollback restores those of the revision it restores.
- **A new revision revives a removed deployment**; numbering continues, history is never reused.
- **Freezes** (``freezes``) are folded by projections/freezes.py, removed ones kept; whether one
  holds is a question of time, answered outside the fold (projections/freezerules.py). A revision
  keeps an admin's freeze ``override`` reason.
- **Undecodable events** only advance ``position`` here (all decode through ``ledger.events.decode``).
  Every path into the log refuses them (projections/rules.py), so they appear only in a log written
  by an older version, or of a type this version does not know (after a downgrade). The projector
  does not pass one by: it stalls at it and says so (projections/runner.py), so the read models
  never silently differ from the log; replay and the applier stop at it too (projections/undecodable.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec

from ledger import access as access_mod
from ledger import events, records
from projections import compact, selectors, waves
from projections import freezes as freezes_mod

RolloutState = Literal["pending", "applying", "progressing", "healthy", "degraded", "failed", "paused"]
STATES: Final[tuple[RolloutState, ...]] = (
    "pending", "applying", "progressing", "healthy", "degraded", "failed", "paused")
Outcome = Literal["succeeded", "retrying", "failed"]
Health = Literal["healthy", "degraded"]

_STATE_OF: Final[dict[str | None, RolloutState]] = {
    None: "pending",
    "succeeded": "progressing",
    "retrying": "applying",
    "failed": "failed",
}
APPLY_FAILED: Final = "ApplyFailed"
_EMPTY_MANIFESTS: Final = b"[]"


class Target(msgspec.Struct, gc=False, array_like=True):
    name: str
    labels: dict[str, str] = {}
    access: access_mod.Access = access_mod.NONE
    retired: bool = False
    version: int = 0
    position: int = 0
    registered_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class Revision(msgspec.Struct, gc=False, array_like=True):
    number: int
    manifests: bytes
    selector: str
    message: str
    matched_targets: tuple[str, ...]
    actor: str | None
    recorded_at: dt.datetime
    position: int
    rolled_back_to: int | None = None
    scope: str = ""
    progress_deadline_seconds: int = events.PROGRESS_DEADLINE_SECONDS
    self_heal: bool = True
    override: str = ""  # an admin's reason for letting this revision through freezes
    override_freezes: tuple[str, ...] = ()  # the freezes that covered its targets then


class Rollout(msgspec.Struct, gc=False, array_like=True):
    target: str
    desired_revision: int
    applied_revision: int | None = None
    state: RolloutState = "pending"
    outcome: Outcome | None = None
    last_error: str | None = None
    last_attempt_at: dt.datetime | None = None
    attempts: int = 0
    objects_applied: int = 0
    health: Health | None = None
    reason: str | None = None
    message: str | None = None


class Deployment(msgspec.Struct, gc=False, array_like=True):
    name: str
    current_revision: int = 0
    selector: str = ""
    paused: bool = False
    pause_reason: str = ""
    removed: bool = False
    version: int = 0
    position: int = 0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    revisions: dict[int, Revision] = {}
    rollouts: dict[str, Rollout] = {}
    scope: str = ""
    progress: waves.Progress | None = None  # the current revision's rollout (projections/waves.py)


class Fleet(msgspec.Struct, gc=False, array_like=True):
    targets: dict[str, Target] = {}
    deployments: dict[str, Deployment] = {}
    position: int = 0
    recorded_at: dt.datetime | None = None
    freezes: dict[str, freezes_mod.Freeze] = {}


class Meta(msgspec.Struct, frozen=True, gc=False):
    """What the fold needs to know about an event beyond its data (a Struct: cheap to build)."""

    position: int
    stream: str
    version: int
    recorded_at: dt.datetime
    actor: str | None = None
    on_behalf_of: str | None = None  # read for revisions only (the four-eyes rule of approvals)


def empty() -> Fleet:
    return Fleet()


def copy(fleet: Fleet) -> Fleet:
    """A deep, independent copy (the fold mutates in place)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(fleet), type=Fleet)


@functools.lru_cache(maxsize=4096)
def selector_of(text: str) -> selectors.Selector | None:
    """The parsed selector, or None when the text is invalid (it then matches nothing)."""
    try:
        return selectors.parse(text)
    except selectors.SelectorError:
        return None


def conjunction(*texts: str) -> str:
    """One selector that matches what every one of ``texts`` matches ("" matches everything)."""
    parts: list[str] = []
    for text in texts:
        if text and text not in parts:
            parts.append(text)
    return ",".join(parts)


def targeting(deployment: Deployment) -> str:
    """What decides where the deployment goes: its selector and its revision's scope, together."""
    return conjunction(deployment.selector, deployment.scope) if deployment.scope else deployment.selector


def _matches(selector: selectors.Selector | None, target: Target) -> bool:
    return selector is not None and not target.retired and selector.matches(target.labels)


def matches(fleet: Fleet, deployment_name: str) -> list[str]:
    """Targets the deployment's current selector matches, retired ones excluded, sorted."""
    deployment = fleet.deployments.get(deployment_name)
    if deployment is None:
        return []
    return matching(fleet, targeting(deployment))


def matching(fleet: Fleet, selector_text: str) -> list[str]:
    """Targets ``selector_text`` matches now, retired ones excluded, sorted."""
    selector = selector_of(selector_text)
    return sorted(name for name, target in fleet.targets.items() if _matches(selector, target))


def desired(fleet: Fleet, deployment_name: str) -> dict[str, int]:
    """Target -> revision that should be applied there; empty when removed or never submitted.

    A paused deployment still reports its revision; its rollouts say ``paused``.
    """
    deployment = fleet.deployments.get(deployment_name)
    if deployment is None or deployment.removed or deployment.current_revision == 0:
        return {}
    return {target: deployment.current_revision for target in deployment.rollouts}


def manifests_at(fleet: Fleet, deployment: str, revision: int) -> list[dict[str, Any]]:
    """The manifests of ``revision`` (parsed anew on each call); KeyError when unknown."""
    found: list[dict[str, Any]] = json.loads(fleet.deployments[deployment].revisions[revision].manifests)
    return found


def _state(deployment: Deployment, rollout: Rollout) -> RolloutState:
    if deployment.paused:
        return "paused"
    if rollout.outcome == "succeeded" and rollout.health is not None:
        return rollout.health
    return _STATE_OF[rollout.outcome]


def _retarget(fleet: Fleet, deployment: Deployment) -> None:
    """Give rollouts to exactly the targets the current selector matches."""
    if deployment.removed or deployment.current_revision == 0:
        deployment.rollouts.clear()
        return
    selector = selector_of(targeting(deployment))
    wanted = {name for name, target in fleet.targets.items() if _matches(selector, target)}
    for name in [n for n in deployment.rollouts if n not in wanted]:
        del deployment.rollouts[name]
    for name in sorted(wanted.difference(deployment.rollouts)):
        deployment.rollouts[name] = Rollout(
            target=name, desired_revision=deployment.current_revision,
            state="paused" if deployment.paused else "pending",
        )


def _on_target(fleet: Fleet, target: Target) -> None:
    """A target's labels or retirement changed: add or drop its rollouts everywhere."""
    for deployment in fleet.deployments.values():
        if deployment.removed or deployment.current_revision == 0:
            continue
        wanted = _matches(selector_of(targeting(deployment)), target)
        if wanted and target.name not in deployment.rollouts:
            deployment.rollouts[target.name] = Rollout(
                target=target.name, desired_revision=deployment.current_revision,
                state="paused" if deployment.paused else "pending",
            )
        elif not wanted and target.name in deployment.rollouts:
            del deployment.rollouts[target.name]


def _set_target(fleet: Fleet, event: events.TargetRegistered | events.TargetUpdated, meta: Meta) -> None:
    target = fleet.targets.get(event.target)
    if target is None:
        target = Target(name=event.target, registered_at=meta.recorded_at)
        fleet.targets[event.target] = target
    target.labels = compact.labels(event.labels)
    target.access = compact.access(access_mod.of(event))
    if isinstance(event, events.TargetRegistered):
        target.retired = False
    target.version = meta.version
    target.position = meta.position
    target.updated_at = meta.recorded_at
    _on_target(fleet, target)


def _retire_target(fleet: Fleet, event: events.TargetRetired, meta: Meta) -> None:
    target = fleet.targets.get(event.target)
    if target is None:
        target = Target(name=event.target, registered_at=meta.recorded_at)
        fleet.targets[event.target] = target
    target.retired = True
    target.version = meta.version
    target.position = meta.position
    target.updated_at = meta.recorded_at
    _on_target(fleet, target)


def _deployment(fleet: Fleet, name: str, meta: Meta) -> Deployment:
    deployment = fleet.deployments.get(name)
    if deployment is None:
        deployment = Deployment(name=name, created_at=meta.recorded_at)
        fleet.deployments[name] = deployment
    deployment.version = meta.version
    deployment.position = meta.position
    deployment.updated_at = meta.recorded_at
    return deployment


def _shared(previous: Revision | None, manifests: bytes, selector: str,
            matched: list[str]) -> tuple[bytes, str, tuple[str, ...]]:
    """Reuse the predecessor's objects where equal, so long histories stay small in memory."""
    matched_tuple = tuple(matched)
    if previous is None:
        return manifests, selector, matched_tuple
    return (
        previous.manifests if previous.manifests == manifests else manifests,
        previous.selector if previous.selector == selector else selector,
        previous.matched_targets if previous.matched_targets == matched_tuple else matched_tuple,
    )


def _make_current(fleet: Fleet, deployment: Deployment, revision: Revision) -> None:
    deployment.revisions[revision.number] = revision
    retarget = (deployment.removed or deployment.current_revision == 0
                or deployment.selector != revision.selector or deployment.scope != revision.scope)
    deployment.removed = False
    deployment.current_revision = revision.number
    deployment.selector = revision.selector
    deployment.scope = revision.scope
    if retarget:
        _retarget(fleet, deployment)
    state: RolloutState = "paused" if deployment.paused else "pending"
    for rollout in deployment.rollouts.values():
        rollout.desired_revision = revision.number
        rollout.outcome = None
        rollout.last_error = None
        rollout.attempts = 0
        rollout.health = None
        rollout.reason = None
        rollout.message = None
        rollout.state = state


def _submit(fleet: Fleet, event: events.RevisionSubmitted, meta: Meta) -> None:
    deployment = _deployment(fleet, event.deployment, meta)
    previous = deployment.revisions.get(deployment.current_revision)
    manifests, selector, matched = _shared(
        previous, events.encode(event.manifests), event.selector, event.matched_targets)
    deployment.progress = waves.begin(deployment.progress, event, deployment.current_revision,
                                      deployment.rollouts, meta)
    _make_current(fleet, deployment, Revision(
        number=event.revision, manifests=manifests, selector=selector, message=event.message,
        matched_targets=matched, actor=meta.actor, recorded_at=meta.recorded_at,
        position=meta.position, scope=event.scope.targets,
        progress_deadline_seconds=event.progress_deadline_seconds, self_heal=event.self_heal,
        override=event.override.reason if event.override else "",
        override_freezes=tuple(event.override.freezes) if event.override else (),
    ))


def _roll_back(fleet: Fleet, event: events.RolledBack, meta: Meta) -> None:
    deployment = _deployment(fleet, event.deployment, meta)
    base = deployment.revisions.get(event.to_revision)
    previous = deployment.revisions.get(deployment.current_revision)
    restored = base.manifests if base is not None else _EMPTY_MANIFESTS
    _, selector, matched = _shared(
        previous, restored, base.selector if base is not None else deployment.selector,
        event.matched_targets)
    deployment.progress = waves.begin(deployment.progress, event, deployment.current_revision,
                                      deployment.rollouts, meta)
    _make_current(fleet, deployment, Revision(
        number=event.revision, manifests=restored, selector=selector, message=event.message,
        matched_targets=matched, actor=meta.actor, recorded_at=meta.recorded_at,
        position=meta.position, rolled_back_to=event.to_revision,
        scope=conjunction(base.scope if base is not None else "", event.scope.targets),
        progress_deadline_seconds=(base.progress_deadline_seconds if base is not None
                                   else events.PROGRESS_DEADLINE_SECONDS),
        self_heal=base.self_heal if base is not None else True,
        override=event.override.reason if event.override else "",
        override_freezes=tuple(event.override.freezes) if event.override else (),
    ))


def _pause(fleet: Fleet, name: str, paused: bool, reason: str, meta: Meta) -> None:
    deployment = _deployment(fleet, name, meta)
    deployment.paused = paused
    deployment.pause_reason = reason if paused else ""
    for rollout in deployment.rollouts.values():
        rollout.state = _state(deployment, rollout)


def _remove(fleet: Fleet, event: events.DeploymentRemoved, meta: Meta) -> None:
    deployment = _deployment(fleet, event.deployment, meta)
    deployment.removed = True
    deployment.paused = False
    deployment.pause_reason = ""
    deployment.rollouts.clear()


def _outcome(fleet: Fleet, event: events.ApplySucceeded | events.ApplyFailed, meta: Meta) -> None:
    deployment = fleet.deployments.get(event.deployment)
    rollout = deployment.rollouts.get(event.target) if deployment is not None else None
    if deployment is None or rollout is None:
        return
    rollout.last_attempt_at = meta.recorded_at
    current = event.revision == rollout.desired_revision
    if isinstance(event, events.ApplySucceeded):
        # Revision 0 is the applier's prune: afterwards the target carries nothing of the deployment.
        rollout.applied_revision = event.revision or None
        rollout.objects_applied = len(event.objects)
        if current:
            rollout.outcome = "succeeded"
            rollout.last_error = None
            rollout.attempts = event.attempt
            rollout.health = None
    elif current:
        rollout.outcome = "retrying" if event.retryable else "failed"
        rollout.last_error = event.error
        rollout.attempts = event.attempt
        if not event.retryable:
            rollout.reason = event.reason or APPLY_FAILED
            rollout.message = event.error
    rollout.state = _state(deployment, rollout)


def _freeze(fleet: Fleet, event: events.FreezeSet | events.FreezeRemoved, meta: Meta) -> None:
    freezes_mod.fold(fleet.freezes, event, meta.position, meta.version, meta.recorded_at, meta.actor)


def _health(fleet: Fleet, event: events.TargetHealthy | events.TargetDegraded, meta: Meta) -> None:
    deployment = fleet.deployments.get(event.deployment)
    rollout = deployment.rollouts.get(event.target) if deployment is not None else None
    if (deployment is None or rollout is None or event.revision != rollout.desired_revision
            or rollout.outcome != "succeeded" or event.attempt != rollout.attempts):
        return  # another revision, or an apply since that is not followed yet
    if isinstance(event, events.TargetHealthy):
        rollout.health = "healthy"
    else:
        rollout.health = "degraded"
        rollout.reason = event.reason
        rollout.message = f"{object_text(event.object)}: {event.message}" if event.message else \
            object_text(event.object)
    rollout.state = _state(deployment, rollout)


def object_text(ref: events.ObjectRef) -> str:
    """``Kind namespace/name`` (or ``Kind name`` for a cluster-scoped object)."""
    return f"{ref.kind} {ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind} {ref.name}"


def _paused(fleet: Fleet, event: events.DeploymentPaused, meta: Meta) -> None:
    _pause(fleet, event.deployment, True, event.reason, meta)


def _resumed(fleet: Fleet, event: events.DeploymentResumed, meta: Meta) -> None:
    _pause(fleet, event.deployment, False, event.reason, meta)


def _progress(fleet: Fleet, event: Any, meta: Meta) -> None:
    """A wave or rollout event: into the deployment's rollout progress (projections/waves.py)."""
    deployment = fleet.deployments.get(event.deployment)
    if deployment is not None and deployment.progress is not None:
        waves.apply(deployment.progress, event, meta.recorded_at, meta.actor, meta.position)


def _wave_health(fleet: Fleet, deployment_name: str, revision: int, target: str, health: waves.Health,
            meta: Meta) -> None:
    deployment = fleet.deployments.get(deployment_name)
    if deployment is not None and deployment.progress is not None:
        waves.observe(deployment.progress, revision, target, health, meta.recorded_at, meta.position)


def _health_and_waves(fleet: Fleet, event: events.TargetHealthy | events.TargetDegraded, meta: Meta) -> None:
    _health(fleet, event, meta)
    verdict: waves.Health = "healthy" if isinstance(event, events.TargetHealthy) else "degraded"
    _wave_health(fleet, event.deployment, event.revision, event.target, verdict, meta)


def _apply_failed(fleet: Fleet, event: events.ApplyFailed, meta: Meta) -> None:
    _outcome(fleet, event, meta)
    if not event.retryable:
        _wave_health(fleet, event.deployment, event.revision, event.target, "failed", meta)


# Dispatch on the exact type: one dict lookup instead of a chain of isinstance checks, which
# matters when a rebuild folds a million events.
_HANDLERS: Final[dict[type[events.Event], Callable[[Fleet, Any, Meta], None]]] = {
    events.TargetRegistered: _set_target,
    events.TargetUpdated: _set_target,
    events.TargetRetired: _retire_target,
    events.RevisionSubmitted: _submit,
    events.RolledBack: _roll_back,
    events.DeploymentPaused: _paused,
    events.DeploymentResumed: _resumed,
    events.DeploymentRemoved: _remove,
    events.ApplySucceeded: _outcome,
    events.ApplyFailed: _apply_failed,
    events.TargetHealthy: _health_and_waves,
    events.TargetDegraded: _health_and_waves,
    **{kind: _progress for kind in (
        events.WaveStarted, events.WaveCompleted, events.ApprovalRequested, events.ApprovalGranted,
        events.RolloutHalted, events.RolloutResumed, events.RolloutCompleted, events.RolloutSuperseded)},
    events.FreezeSet: _freeze,
    events.FreezeRemoved: _freeze,
}


def apply(fleet: Fleet, event: events.AnyEvent, meta: Meta) -> Fleet:
    """Fold one event into ``fleet`` (in place) and return it."""
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(fleet, event, meta)
    fleet.position = meta.position
    fleet.recorded_at = meta.recorded_at
    return fleet


class _Actor(msgspec.Struct):
    actor: str | None = None
    on_behalf_of: str | None = None


_actor_decoder: Final = msgspec.json.Decoder(_Actor)
# Outcomes are the bulk of the log and their actor is the applier: not worth decoding.
_NO_ACTOR: Final = frozenset({"ApplySucceeded", "ApplyFailed", "TargetHealthy", "TargetDegraded",
                              "DriftDetected"})


_REVISIONS: Final = frozenset({"RevisionSubmitted", "RolledBack"})


def _who(metadata: str) -> _Actor:
    try:
        return _actor_decoder.decode(metadata)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _Actor()


def actor_of(type_: str, metadata: str) -> str | None:
    if type_ in _NO_ACTOR:
        return None
    try:
        return _actor_decoder.decode(metadata).actor
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def fold_row(fleet: Fleet, position: int, stream: str, version: int, type_: str, data: str,
             metadata: str, recorded_at: dt.datetime) -> events.AnyEvent | None:
    """Fold one stored event given as columns (data and metadata as JSON text); returns the event
    it decoded, for callers that track what changed, or None when it did not decode.

    The hot path of every rebuild and replay, hence written out rather than composed."""
    event: events.AnyEvent | None
    try:
        event = events.decode(type_, data)
    except events.DecodeError:
        event = None
    handler = _HANDLERS.get(type(event)) if event is not None else None
    if handler is not None:  # token events, for one, are no concern of the fleet
        if type_ in _REVISIONS:
            who = _who(metadata)
            handler(fleet, event, Meta(position, stream, version, recorded_at, who.actor, who.on_behalf_of))
        else:
            actor = None if type_ in _NO_ACTOR else actor_of(type_, metadata)
            handler(fleet, event, Meta(position, stream, version, recorded_at, actor))
    fleet.position = position
    fleet.recorded_at = recorded_at
    return event


def apply_row(fleet: Fleet, position: int, stream: str, version: int, type_: str, data: str,
              metadata: str, recorded_at: dt.datetime) -> Fleet:
    """Fold one stored event given as columns (data and metadata as JSON text)."""
    fold_row(fleet, position, stream, version, type_, data, metadata, recorded_at)
    return fleet


def apply_recorded(fleet: Fleet, rec: records.RecordedEvent) -> Fleet:
    """Fold one stored event, decoded through the catalogue in ``ledger.events``."""
    return apply_row(fleet, rec.position, rec.stream, rec.version, rec.type, rec.data, rec.metadata,
                     rec.recorded_at)
