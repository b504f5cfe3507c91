"""What a rollout records next, decided from its folded state and the time: pure, so a restart, a
second driver or a replay decides exactly the same (docs/rollouts.md).

The driver (handlers/rollouts.py) calls :func:`decide` whenever a deployment's rollout may have
moved and appends what it returns with the ids of :func:`event_id`, which depend only on what the
event is about (deployment, revision, type, wave or halt number): recording one twice is a no-op, so
a restart mid-soak, a crash after an append or two drivers at once never double an event.

Decisions:

- **A wave starts** when the previous one completed and its soak (``soak_seconds`` after the moment
  its last member settled, from recorded times) has passed or a ``/promote`` ended it early, and,
  if it needs an approval, once one is granted (``ApprovalRequested`` is recorded first, once).
- **A wave completes** when each member is healthy or failing within the budget; it records how
  many are healthy and how long from its start to its last member settling. Completion and the next
  wave's start go in one append when nothing is in between (no soak, no approval).
- **A wave halts the rollout** when more of its members are degraded or failed than
  ``max_failures`` (members forgiven by a resume excepted), also while a later wave soaks.
- **Rollback** (``on_failure: rollback``): after an automatic halt, a ``RolledBack`` to the last
  revision that completed healthy, whose only wave is the targets the bad revision reached (actor
  ``ledger``, causation the halt). Without such a revision the rollout stays halted.
- **A new revision supersedes** a rollout still rolling or halted: ``RolloutSuperseded``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Final

from ledger import events, rollouts
from projections import fleet, waves

NAMESPACE: Final = uuid.UUID("0d5c3c52-6b8e-5a3a-9d0e-726f6c6c6f75")
ROLLBACK_WAVE: Final = "rollback"


def event_id(deployment: str, revision: int, kind: str, detail: str | int = "") -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{deployment}/{revision}/{kind}/{detail}")


RolloutEvent = (events.WaveStarted | events.WaveCompleted | events.ApprovalRequested | events.ApprovalGranted
                | events.RolloutHalted | events.RolloutResumed | events.RolloutCompleted
                | events.RolloutSuperseded)


def id_of(event: RolloutEvent, halts: int = 0) -> uuid.UUID:
    """The deterministic id of a rollout event (``halts``: how many halts came before a halt)."""
    detail: str | int = getattr(event, "wave", "")
    if isinstance(event, events.RolloutHalted):
        detail = halts + 1
    return event_id(event.deployment, event.revision, events.type_name(event), detail)


@dataclass
class Decision:
    record: list[RolloutEvent] = field(default_factory=list)  # for rollout-<deployment>, in order
    rollback: events.RolledBack | None = None  # for deployment-<deployment>
    rollback_cause: uuid.UUID | None = None
    due: dt.datetime | None = None  # decide again then (a soak ends)


def _failing(p: waves.Progress, members: list[str]) -> list[str]:
    forgiven = set(p.forgiven)
    return [t for t in members if p.health.get(t) in waves.FAILING and t not in forgiven]


def _settled(p: waves.Progress, members: list[str]) -> dt.datetime | None:
    """When the last member settled, if every one has (healthy, failing, or forgiven)."""
    last: dt.datetime | None = None
    forgiven = set(p.forgiven)
    for t in members:
        if t not in p.health and t not in forgiven:
            return None
        at = p.health_at.get(t)
        if at is not None and (last is None or at > last):
            last = at
    return last


def _ms(later: dt.datetime, earlier: dt.datetime) -> int:
    return max(0, int((later - earlier) / dt.timedelta(milliseconds=1)))


def decide(d: fleet.Deployment, now: dt.datetime) -> Decision:
    """What ``d``'s rollout records now (see the module docstring)."""
    out = Decision()
    p = d.progress
    if p is None or d.removed:
        return out
    out.record.extend(events.RolloutSuperseded(deployment=d.name, revision=r, by_revision=p.revision)
                      for r in p.supersedes)
    strategy = p.strategy
    if strategy is None or d.paused or p.revision != d.current_revision:
        return out
    if p.phase == "halted":
        _roll_back(d, p, strategy, out)
        return out
    if p.phase != "rolling":
        return out
    targets = d.rollouts.keys()
    for index, wave in enumerate(p.waves):
        if wave.started_at is None:
            break
        failing = _failing(p, waves.members(p, index, targets))
        if len(failing) > strategy.max_failures:
            out.record.append(events.RolloutHalted(
                deployment=d.name, revision=p.revision, wave=wave.name, failed_targets=failing,
                reason=f"{len(failing)} target(s) of wave {wave.name} degraded or failed; "
                       f"the wave tolerates {strategy.max_failures}"))
            return out
    settled_before: dt.datetime | None = None
    for index, wave in enumerate(p.waves):
        if wave.completed_at is not None:
            settled_before = wave.settled_at
            continue
        started = wave.started_at
        if started is None:
            if index > 0 and wave.promoted_by is None and settled_before is not None:
                due = settled_before + dt.timedelta(seconds=strategy.soak_seconds)
                if now < due:
                    out.due = due
                    return out
            if wave.needs_approval and wave.approved_by is None:
                if not wave.approval_requested:
                    out.record.append(events.ApprovalRequested(deployment=d.name, revision=p.revision,
                                                               wave=wave.name))
                return out
            members = waves.members(p, index, targets)
            out.record.append(events.WaveStarted(deployment=d.name, revision=p.revision, wave=wave.name,
                                                 targets=members))
            if members:
                return out
            started, settled, healthy = now, now, 0
        else:
            members = waves.members(p, index, targets)
            found = _settled(p, members) if members else started
            if found is None:
                return out
            settled = max(found, started)
            healthy = sum(1 for t in members if p.health.get(t) == "healthy")
        out.record.append(events.WaveCompleted(deployment=d.name, revision=p.revision, wave=wave.name,
                                               healthy=healthy, duration_ms=_ms(settled, started)))
        settled_before = settled
    submitted = p.submitted_at or now
    out.record.append(events.RolloutCompleted(deployment=d.name, revision=p.revision,
                                              duration_ms=_ms(settled_before or submitted, submitted)))
    return out


def reached(p: waves.Progress, targets: list[str]) -> list[str]:
    """The targets the revision of ``p`` may have reached: those its started waves released."""
    return sorted(t for t in targets if waves.revision_for(p, p.revision, t) == p.revision)


def _roll_back(d: fleet.Deployment, p: waves.Progress, strategy: rollouts.Strategy, out: Decision) -> None:
    if strategy.on_failure != "rollback" or not p.halted_targets:
        return  # a halt by a person (no failed targets) stays a halt
    to = p.last_healthy
    if not to or to not in d.revisions or to == p.revision:
        return
    hit = reached(p, sorted(d.rollouts))
    out.rollback = events.RolledBack(
        deployment=d.name, revision=max(d.revisions) + 1, to_revision=to,
        message=f"automatic rollback of revision {p.revision} to {to}: {p.halt_reason}",
        matched_targets=hit,
        strategy=rollouts.Strategy(waves=[rollouts.WaveSpec(name=ROLLBACK_WAVE)],
                                   max_failures=rollouts.INT32_MAX),
        waves=[rollouts.WaveMembers(name=ROLLBACK_WAVE, targets=hit)])
    out.rollback_cause = event_id(d.name, p.revision, "RolloutHalted", p.halts)
