"""What the applier knows beyond the fleet: per deployment and target, what was recorded there.

The fleet fold (projections.fleet) says what *should* be on each target. This module folds the
same log a second time for what the applier needs to decide what to *do*, and nothing else:

- ``attempts``: the highest attempt recorded per revision (0 = prune), so the next attempt's id
  is new even after a restart (outcomes.event_id);
- the last outcome (revision, succeeded/retrying/failed, position), so a converged target is left
  alone and a permanent failure is not retried until the revision or the target changes;
- ``placed``: the deployment may have objects on the target — set whenever the target is selected
  (even before anything was applied: a crash mid-apply leaves objects without an outcome) and
  cleared by a recorded prune. A selected target that stops being selected, or a removed
  deployment, is pruned wherever ``placed`` is set. Retiring a target clears it: a retired target
  is left alone for good.
- ``reached``: where in the log the way to reach a target last changed (registration, an update
  of its access fields, or a change of its credential in the operator's file, see
  :func:`credential_changed`): earlier outcomes do not count any more, so the current revisions are
  applied again through the new client, and a permanent failure is tried again.

:func:`plan` is the decision, pure: the work one target needs now. For a revision with a rollout
strategy it brings a target only to the revision its wave allows (projections/waves.py
``revision_for``), and :func:`fold` names the targets a wave just released. The whole state is a msgspec
Struct so that the applier's checkpoint can store it (handlers.checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from handlers import followed
from ledger import access, events, records
from projections import fleet, undecodable, waves

Outcome = Literal["succeeded", "retrying", "failed", ""]


class Seen(msgspec.Struct, array_like=True, gc=False):
    """A drift recorded (DriftDetected at ``position``) whose occurrence has not ended in the log."""

    fields: list[str]
    position: int


class Pair(msgspec.Struct, array_like=True, gc=False):
    """One deployment on one target."""

    attempts: dict[int, int] = {}
    revision: int = -1
    outcome: Outcome = ""
    position: int = 0
    placed: bool = False
    drift: dict[str, Seen] = {}  # object_key of the object -> its last recorded drift
    drifts: int = 0  # DriftDetected events recorded for the pair (numbers their ids)
    drift_at: int = 0  # position of the last one folded


class State(msgspec.Struct, array_like=True):
    fleet: fleet.Fleet = msgspec.field(default_factory=fleet.empty)
    pairs: dict[str, dict[str, Pair]] = {}
    reached: dict[str, int] = {}
    book: followed.Book = msgspec.field(default_factory=followed.Book)  # what health follows

    @property
    def position(self) -> int:
        return self.fleet.position


@dataclass(frozen=True, slots=True)
class Work:
    deployment: str
    revision: int  # 0: prune everything of the deployment from the target
    attempt: int
    resync: bool = False


def pair(state: State, deployment: str, target: str) -> Pair:
    by_target = state.pairs.get(deployment)
    if by_target is None:
        by_target = state.pairs[deployment] = {}
    found = by_target.get(target)
    if found is None:
        found = by_target[target] = Pair()
    return found


def _access(target: fleet.Target | None) -> access.Access | None:
    if target is None or target.retired:
        return None
    return target.access


def credential_changed(state: State, names: set[str]) -> set[str]:
    """The operator's file changed credentials ``names``: the live targets naming one of them are
    reached anew (as of the current position). Returns those targets."""
    found = {n for n, t in state.fleet.targets.items()
             if not t.retired and t.access.credentials in names}
    for name in found:
        state.reached[name] = state.position
    return found


def observe(state: State, outcome: events.ApplySucceeded | events.ApplyFailed, position: int,
            at: float = 0.0) -> None:
    """Take in one outcome (from the log, or just appended by this process); ``at`` is when it was
    recorded (seconds since the epoch), from which health is followed."""
    if isinstance(outcome, events.ApplySucceeded):
        followed.succeeded(state.book, outcome, at)
    p = pair(state, outcome.deployment, outcome.target)
    p.attempts[outcome.revision] = max(p.attempts.get(outcome.revision, 0), outcome.attempt)
    if position < p.position:
        return  # older than what we know (our own appends are taken in before the log is read)
    if isinstance(outcome, events.ApplySucceeded) and position > p.drift_at:
        p.drift = {}  # every object was applied (forced) again: remembered drift has ended
    p.revision = outcome.revision
    p.position = position
    if isinstance(outcome, events.ApplySucceeded):
        p.outcome = "succeeded"
        p.placed = outcome.revision != 0
    else:
        p.outcome = "retrying" if outcome.retryable else "failed"
        p.placed = True


def observe_drift(state: State, drift: events.DriftDetected, position: int) -> None:
    """Take in one DriftDetected (from the log, or just appended by this process)."""
    p = pair(state, drift.deployment, drift.target)
    if position <= p.drift_at:
        return
    p.drift_at = position
    p.drifts += 1
    p.drift[object_key(drift.object)] = Seen(list(drift.fields), position)


def object_key(ref: events.ObjectRef) -> str:
    return f"{ref.api_version}/{ref.kind}/{ref.namespace or ''}/{ref.name}"


def self_heal(state: State, deployment: str, revision: int) -> bool:
    """Whether the applier puts drift of ``revision`` back (the revision's ``self_heal``)."""
    found = state.fleet.deployments.get(deployment)
    known = found.revisions.get(revision) if found is not None else None
    return known.self_heal if known is not None else True


def _place(state: State, deployment: str) -> None:
    for target in fleet.desired(state.fleet, deployment):
        pair(state, deployment, target).placed = True


_TARGET_TYPES = frozenset({"TargetRegistered", "TargetUpdated", "TargetRetired"})


def fold(state: State, rec: records.RecordedEvent) -> set[str]:
    """Fold one stored event into ``state``; returns the targets whose work may have changed."""
    affected: set[str] = set()
    before: access.Access | None = None
    if rec.type in _TARGET_TYPES:  # rare: look at the target before the fleet fold changes it
        try:
            decoded: events.AnyEvent | None = events.decode(rec.type, rec.data)
        except events.DecodeError:
            decoded = None
        match decoded:
            case events.TargetRegistered(target=name) | events.TargetUpdated(target=name):
                before = _access(state.fleet.targets.get(name))
            case events.TargetRetired(target=name):
                followed.forget_target(state.book, name)
                for by_target in state.pairs.values():
                    p = by_target.get(name)
                    if p is not None:
                        p.placed = False
                        p.revision, p.outcome = -1, ""
    # The fleet's own hot path. An event it cannot decode stops the applier (projections/
    # undecodable.py): the fleet keeps the position before it, so neither a checkpoint nor a
    # restart passes it by.
    folded_to, folded_at = state.fleet.position, state.fleet.recorded_at
    event = fleet.fold_row(state.fleet, rec.position, rec.stream, rec.version, rec.type, rec.data,
                           rec.metadata, rec.recorded_at)
    if event is None:
        state.fleet.position, state.fleet.recorded_at = folded_to, folded_at
        raise undecodable.stop("applier", rec.position, rec.stream, rec.type, rec.data)
    match event:
        case events.TargetRegistered() | events.TargetUpdated():
            if _access(state.fleet.targets.get(event.target)) != before:
                state.reached[event.target] = rec.position
            for name, deployment in state.fleet.deployments.items():
                if event.target in deployment.rollouts:
                    pair(state, name, event.target).placed = True
            affected.add(event.target)
        case events.TargetRetired():
            affected.add(event.target)
        case events.RevisionSubmitted() | events.RolledBack():
            by_target = state.pairs.get(event.deployment, {})
            rollouts = state.fleet.deployments[event.deployment].rollouts
            for name, p in by_target.items():
                # Older revisions' attempts are never needed again, but for the one the target has:
                # a freeze keeps it there, and drift healing re-applies it (handlers/freezegate.py).
                rollout = rollouts.get(name)
                keep = (0, event.revision, rollout.applied_revision if rollout is not None else None)
                p.attempts = {r: n for r, n in p.attempts.items() if r in keep}
            _place(state, event.deployment)
            affected.update(_involved(state, event.deployment))
        case events.DeploymentPaused() | events.DeploymentResumed() | events.DeploymentRemoved():
            _place(state, event.deployment)
            affected.update(_involved(state, event.deployment))
        case events.ApplySucceeded() | events.ApplyFailed():
            observe(state, event, rec.position, rec.recorded_at.timestamp())
        case events.TargetHealthy() | events.TargetDegraded():
            followed.judged(state.book, event)
        case events.FreezeSet() | events.FreezeRemoved():  # holds may begin or end anywhere
            affected.update(n for n, t in state.fleet.targets.items() if not t.retired)
        case events.DriftDetected():
            observe_drift(state, event, rec.position)
    affected.update(_released(state, event, rec.position))
    return affected


def _released(state: State, event: events.AnyEvent | None, position: int) -> list[str]:
    """Targets a wave of a progressive rollout let through at ``position`` (projections/waves.py)."""
    name = getattr(event, "deployment", None)
    deployment = state.fleet.deployments.get(name) if name is not None else None
    progress = deployment.progress if deployment is not None else None
    if progress is None or progress.released_at != position:
        return []
    return progress.last_released


def _involved(state: State, deployment: str) -> set[str]:
    involved = set(fleet.desired(state.fleet, deployment))
    involved.update(t for t, p in state.pairs.get(deployment, {}).items() if p.placed)
    return involved


def plan(state: State, target: str, *, resync: bool = False) -> list[Work]:
    """The work ``target`` needs now, one item per deployment, in deployment-name order."""
    found = state.fleet.targets.get(target)
    if found is None or found.retired:
        return []
    reached = state.reached.get(target, 0)
    work: list[Work] = []
    for name in sorted(state.fleet.deployments):
        deployment = state.fleet.deployments[name]
        p = state.pairs.get(name, {}).get(target)
        if deployment.paused and not deployment.removed:
            continue
        selected = (not deployment.removed and deployment.current_revision > 0
                    and target in deployment.rollouts)
        if selected:
            # A progressive rollout holds targets of waves not started yet at what they had.
            revision = waves.revision_for(deployment.progress, deployment.current_revision, target)
            if revision == 0:
                continue
            if p is not None and p.revision == revision:
                if p.outcome == "succeeded" and p.position > reached:
                    if resync:
                        work.append(Work(name, revision, p.attempts.get(revision, 0) + 1, resync=True))
                    continue
                if p.outcome == "failed" and p.position > max(found.position, reached):
                    continue
            attempt = (p.attempts.get(revision, 0) if p is not None else 0) + 1
            work.append(Work(name, revision, attempt))
        elif p is not None and p.placed:
            if p.revision == 0 and p.outcome == "failed" and p.position > max(found.position, reached):
                continue
            work.append(Work(name, 0, p.attempts.get(0, 0) + 1))
    return work
