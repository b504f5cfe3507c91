"""The commands people give a progressive rollout, as pure decisions over the deployment's state.

``/approve``, ``/promote``, ``/halt`` and ``/resume`` (api/rollouts.py) load the deployment with its
rollout (projections/loading.py) and call these; each returns the event to record or raises a
``commands.DomainError`` naming the field.

Decisions:

- **Four eyes.** Whoever submitted a revision cannot approve its waves, unless through an admin
  token: neither the token that submitted it nor the person it acted for (``X-Actor``, as a CI bot
  acts for someone), whether as the approver's token or as its ``X-Actor``. An approval is recorded
  once per wave (a second one is a conflict).
- **Promote** ends the soak of the next wave early: it records that wave's ``WaveStarted`` (actor:
  the promoter), only while that wave is waiting for its soak, and never past an approval.
- **Halt** stops new waves (targets already reached keep the revision); **resume** continues a
  halted rollout, the targets that had failed then no longer counting against the budget.
"""

from __future__ import annotations

import uuid

from ledger import events
from projections import commands, fleet, rollout_decisions, waves


class Forbidden(commands.DomainError):
    """The actor may not do this (four eyes)."""


def _rolling(name: str, d: fleet.Deployment | None) -> tuple[fleet.Deployment, waves.Progress]:
    if d is None or not d.revisions or d.removed:
        raise commands.NotFound(f"deployment {name} has no revisions")
    p = d.progress
    if p is None or p.strategy is None or p.revision != d.current_revision:
        raise commands.Conflict(f"revision {d.current_revision} of {name} has no rollout strategy: "
                                "it goes everywhere at once")
    return d, p


def _wave(name: str, p: waves.Progress, wave: str) -> tuple[int, waves.Wave]:
    for index, found in enumerate(p.waves):
        if found.name == wave:
            return index, found
    raise commands.Invalid(f"revision {p.revision} of {name} has no wave {wave!r}; waves: "
                           + ", ".join(w.name for w in p.waves), field="wave")


def approve(name: str, d: fleet.Deployment | None, wave: str, by: str, *, admin: bool,
            reason: str, on_behalf_of: str | None = None) -> events.ApprovalGranted:
    d, p = _rolling(name, d)
    _, found = _wave(name, p, wave)
    if not found.needs_approval:
        raise commands.Conflict(f"wave {wave} of revision {p.revision} needs no approval", field="wave")
    if found.approved_by is not None:
        raise commands.Conflict(f"wave {wave} of revision {p.revision} was approved by {found.approved_by}",
                                field="wave")
    if p.phase == "completed":
        raise commands.Conflict(f"the rollout of revision {p.revision} has completed", field="wave")
    submitted_by = {n for n in (p.submitter, p.submitter_for) if n}
    same = sorted(submitted_by & {n for n in (by, on_behalf_of) if n})
    if same and not admin:
        raise Forbidden(f"{same[0]} submitted revision {p.revision} and cannot approve its waves (four "
                        "eyes); another approver or an admin can", field="wave")
    return events.ApprovalGranted(deployment=name, revision=p.revision, wave=wave, by=by, reason=reason)


def promote(name: str, d: fleet.Deployment | None, wave: str) -> events.WaveStarted:
    d, p = _rolling(name, d)
    index, found = _wave(name, p, wave)
    if p.phase != "rolling":
        raise commands.Conflict(f"the rollout of revision {p.revision} is {p.phase}", field="wave")
    if found.started_at is not None:
        raise commands.Conflict(f"wave {wave} of revision {p.revision} has started already", field="wave")
    if index == 0 or p.waves[index - 1].completed_at is None:
        raise commands.Conflict(f"wave {wave} is not soaking: the wave before it has not completed",
                                field="wave")
    if found.needs_approval and found.approved_by is None:
        raise commands.Conflict(f"wave {wave} needs an approval first (POST .../approve)", field="wave")
    return events.WaveStarted(deployment=name, revision=p.revision, wave=wave,
                              targets=waves.members(p, index, d.rollouts.keys()))


def halt(name: str, d: fleet.Deployment | None, reason: str) -> events.RolloutHalted:
    d, p = _rolling(name, d)
    if p.phase != "rolling":
        raise commands.Conflict(f"the rollout of revision {p.revision} is {p.phase}")
    current = next((w.name for w in p.waves if w.completed_at is None), "")
    return events.RolloutHalted(deployment=name, revision=p.revision, wave=current, reason=reason)


def resume(name: str, d: fleet.Deployment | None, reason: str) -> events.RolloutResumed:
    d, p = _rolling(name, d)
    if p.phase != "halted":
        raise commands.Conflict(f"the rollout of revision {p.revision} is {p.phase}, not halted")
    return events.RolloutResumed(deployment=name, revision=p.revision, wave=p.halted_wave, reason=reason)


def halted(d: fleet.Deployment | None) -> bool:
    """Whether ``/resume`` means the rollout (halted) rather than the deployment (paused)."""
    return (d is not None and not d.paused and d.progress is not None
            and d.progress.revision == d.current_revision and d.progress.phase == "halted")


def id_for(event: events.ApprovalGranted | events.WaveStarted) -> uuid.UUID:
    """Approvals and promotions take the ids the driver would give them: recorded once."""
    return rollout_decisions.id_of(event)
