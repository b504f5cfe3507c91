"""Where a deployment's rollout stands, folded from the log: waves, approvals, health, halts.

Part of the fleet fold (projections/fleet.py keeps one :class:`Progress` per deployment, for its
current revision), so the projector, ``/v1/state?at=``, the commands and the applier all see the
same waves. Pure: no I/O, no clock; every time in it is a ``recorded_at`` from the log, so a restart
decides from exactly what was recorded (a soak resumes from the recorded times; nothing is decided
twice). What to record next is decided in projections/rollout_decisions.py.

Decisions:

- **Which revision a target may run** (:func:`revision_for`, what the applier applies): the current
  one when it has no strategy, or when the target's wave has started (within ``max_concurrency``,
  targets are released one by one as the earlier ones settle). Otherwise the target keeps the
  revision it was allowed before this one was submitted (``held``; 0: none, leave it alone).
- **A target that starts matching later** (not among those the revision saw at submission) joins
  the last wave. A target the revision saw but put in no wave (the ledger's own rollback, which
  goes only to the targets the bad revision reached) keeps what it had.
- **Health** of the current revision per target: ``healthy``, ``degraded`` or ``failed`` (a
  permanent apply failure), the latest report winning, with its recorded time (the soak of a wave
  starts when its last member settled).
- **Superseding**: a new revision submitted while a rollout is still rolling or halted leaves the
  old revision in ``supersedes`` until its ``RolloutSuperseded`` is recorded.
- **Last healthy revision** (where an automatic rollback goes): the newest earlier revision whose
  rollout completed, or, without a strategy, that every target it reached reported healthy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any, Final, Literal, Protocol

import msgspec

from ledger import events, hashing, rollouts

Phase = Literal["rolling", "halted", "completed"]
Health = Literal["healthy", "degraded", "failed"]
FAILING: Final = frozenset({"degraded", "failed"})
LEDGER: Final = "ledger"  # the actor of what the ledger records itself


class Wave(msgspec.Struct, gc=False, array_like=True):
    name: str
    targets: list[str]
    max_concurrency: int | None = None
    needs_approval: bool = False
    approval_requested: bool = False
    approved_by: str | None = None
    approval_reason: str = ""
    started_at: dt.datetime | None = None
    promoted_by: str | None = None
    released: int = 0  # how many of ``targets`` (in order) may run the revision, under max_concurrency
    completed_at: dt.datetime | None = None
    settled_at: dt.datetime | None = None  # when its last member settled: the soak starts here
    healthy: int = 0
    duration_ms: int = 0


class Progress(msgspec.Struct, gc=False, array_like=True):
    revision: int = 0
    strategy: rollouts.Strategy | None = None
    submitter: str | None = None
    submitter_for: str | None = None  # the submitter's X-Actor: whom it acted for
    submitted_at: dt.datetime | None = None
    waves: list[Wave] = []
    member: dict[str, int] = {}  # target -> index of its wave
    rank: dict[str, int] = {}  # target -> index within its wave
    held: dict[str, int] = {}  # target -> revision it keeps until its wave starts (0: none)
    health: dict[str, str] = {}
    health_at: dict[str, dt.datetime] = {}
    phase: Phase = "rolling"
    halted_wave: str = ""
    halt_reason: str = ""
    halted_targets: list[str] = []
    halts: int = 0
    resumes: int = 0
    forgiven: list[str] = []
    completed_at: dt.datetime | None = None
    supersedes: list[int] = []
    last_healthy: int = 0
    # Targets released by the event at ``released_at`` (the applier passes them at once).
    last_released: list[str] = []
    released_at: int = 0


def revision_for(p: Progress | None, current: int, target: str) -> int:
    """The revision the applier may bring ``target`` to (0: leave it alone)."""
    if p is None or p.strategy is None or p.revision != current:
        return current
    index = p.member.get(target)
    if index is None:
        if target in p.held:
            return p.held[target]
        return current if p.waves[-1].started_at is not None else 0
    wave = p.waves[index]
    if wave.started_at is None:
        return p.held.get(target, 0)
    if wave.max_concurrency is not None and p.rank[target] >= wave.released:
        return p.held.get(target, 0)
    return current


def completed_healthy(p: Progress, targets: Collection[str]) -> bool:
    if p.strategy is not None:
        return p.phase == "completed"
    return bool(targets) and all(p.health.get(t) == "healthy" for t in targets)


class Who(Protocol):
    """Who recorded the revision, and when (the fleet fold's Meta)."""

    @property
    def actor(self) -> str | None: ...
    @property
    def on_behalf_of(self) -> str | None: ...
    @property
    def recorded_at(self) -> dt.datetime: ...


def begin(old: Progress | None, event: events.RevisionSubmitted | events.RolledBack, current: int,
          targets: Collection[str], who: Who) -> Progress:
    """The progress of a new current revision; ``targets`` are those the deployment had until now."""
    strategy = event.strategy
    supersedes: list[int] = []
    last_healthy = 0
    if old is not None:
        supersedes = list(old.supersedes)
        if old.strategy is not None and old.phase != "completed" and old.revision:
            supersedes.append(old.revision)
        last_healthy = old.revision if completed_healthy(old, targets) else old.last_healthy
    progress = Progress(revision=event.revision, strategy=strategy, submitter=who.actor,
                        submitter_for=who.on_behalf_of, submitted_at=who.recorded_at,
                        supersedes=supersedes, last_healthy=last_healthy)
    if strategy is None:
        return progress
    progress.held = {t: revision_for(old, current, t) for t in (*targets, *event.matched_targets)}
    approvals = set(strategy.approval)
    by_name = {w.name: w for w in event.waves}
    for index, spec in enumerate(strategy.waves):
        members = list(by_name[spec.name].targets) if spec.name in by_name else []
        progress.waves.append(Wave(spec.name, members, spec.max_concurrency, spec.name in approvals))
        for rank, target in enumerate(members):
            progress.member[target] = index
            progress.rank[target] = rank
    return progress


def _release(p: Progress, wave: Wave, position: int) -> None:
    """Release members of a wave with max_concurrency while fewer than that are unsettled."""
    if wave.max_concurrency is None:
        return
    unsettled = sum(1 for t in wave.targets[:wave.released] if t not in p.health)
    while wave.released < len(wave.targets) and unsettled < wave.max_concurrency:
        target = wave.targets[wave.released]
        wave.released += 1
        if target not in p.health:
            unsettled += 1
        _released(p, [target], position)


def _released(p: Progress, targets: list[str], position: int) -> None:
    if p.released_at != position:
        p.last_released, p.released_at = [], position
    p.last_released.extend(targets)


def observe(p: Progress, revision: int, target: str, health: Health, at: dt.datetime, position: int) -> None:
    """A health report (TargetHealthy, TargetDegraded, a permanent ApplyFailed) for ``target``."""
    if revision != p.revision:
        return
    p.health[target] = health
    p.health_at[target] = at
    index = p.member.get(target)
    if index is not None and p.waves[index].started_at is not None:
        _release(p, p.waves[index], position)


def _wave(p: Progress, name: str) -> Wave | None:
    return next((w for w in p.waves if w.name == name), None)


def apply(p: Progress, event: events.AnyEvent, at: dt.datetime, actor: str | None, position: int) -> None:
    """Fold one wave or rollout event of the current revision (others are history only)."""
    if getattr(event, "revision", None) != p.revision and not isinstance(event, events.RolloutSuperseded):
        return
    match event:
        case events.WaveStarted():
            wave = _wave(p, event.wave)
            if wave is None or wave.started_at is not None:
                return
            wave.started_at = at
            if actor not in (None, LEDGER):
                wave.promoted_by = actor  # started by /promote, before its soak ended
            late = [t for t in event.targets if t not in p.member and t not in p.held]
            if wave.max_concurrency is None:
                _released(p, [*wave.targets, *late], position)
            else:
                _released(p, late, position)
                _release(p, wave, position)
        case events.WaveCompleted():
            wave = _wave(p, event.wave)
            if wave is None or wave.completed_at is not None:
                return
            wave.completed_at = at
            wave.healthy = event.healthy
            wave.duration_ms = event.duration_ms
            if wave.started_at is not None:
                wave.settled_at = wave.started_at + dt.timedelta(milliseconds=event.duration_ms)
        case events.ApprovalRequested():
            wave = _wave(p, event.wave)
            if wave is not None:
                wave.approval_requested = True
        case events.ApprovalGranted():
            wave = _wave(p, event.wave)
            if wave is not None and wave.approved_by is None:
                wave.approved_by = event.by
                wave.approval_reason = event.reason
        case events.RolloutHalted():
            if p.phase != "rolling":
                return
            p.phase = "halted"
            p.halted_wave = event.wave
            p.halt_reason = event.reason
            p.halted_targets = list(event.failed_targets)
            p.halts += 1
        case events.RolloutResumed():
            if p.phase != "halted":
                return
            p.phase = "rolling"
            p.forgiven = sorted({*p.forgiven, *p.halted_targets})
            p.halted_targets = []
            p.resumes += 1
        case events.RolloutCompleted():
            p.phase = "completed"
            p.completed_at = at
        case events.RolloutSuperseded():
            if event.revision in p.supersedes:
                p.supersedes = [r for r in p.supersedes if r != event.revision]


def members(p: Progress, index: int, targets: Collection[str]) -> list[str]:
    """Wave ``index``'s members among the deployment's ``targets`` now; the last wave gains the
    targets that started matching after submission."""
    found = [t for t in p.waves[index].targets if t in targets]
    if index == len(p.waves) - 1:
        found.extend(sorted(t for t in targets if t not in p.member and t not in p.held))
    return found


def view(p: Progress | None) -> dict[str, object] | None:
    """How a rollout looks to clients (API, CLI, replay)."""
    if p is None or p.strategy is None:
        return None
    return {
        "revision": p.revision,
        "phase": p.phase,
        "submitter": p.submitter,
        "strategy": msgspec.to_builtins(p.strategy),
        "halted": {"wave": p.halted_wave, "reason": p.halt_reason, "failed_targets": p.halted_targets}
        if p.phase == "halted" else None,
        "completed_at": _time(p.completed_at),
        "waves": [{
            "name": w.name,
            "targets": w.targets,
            "state": _wave_state(p, w),
            "max_concurrency": w.max_concurrency,
            "approval": ({"required": True, "requested": w.approval_requested, "by": w.approved_by,
                          "reason": w.approval_reason} if w.needs_approval else None),
            "started_at": _time(w.started_at),
            "promoted_by": w.promoted_by,
            "completed_at": _time(w.completed_at),
            "healthy": sum(1 for t in w.targets if p.health.get(t) == "healthy"),
            "failing": sorted(t for t in w.targets if p.health.get(t) in FAILING),
            "duration_ms": w.duration_ms if w.completed_at is not None else None,
        } for w in p.waves],
    }


def waiting(view: Mapping[str, Any] | None) -> dict[str, str]:
    """Why each member of a wave that has not started waits, from a rollout's ``view``: the wave,
    and what it waits for (an approver, or a halted rollout). For the CLI and the web UI alike."""
    found: dict[str, str] = {}
    if not view:
        return found
    halted = view.get("halted")
    for wave in view.get("waves", []):
        if wave["started_at"] is not None:
            continue
        why = (f" (rollout halted at wave {halted['wave']})" if halted
               else " (awaiting approval)" if wave["state"] == "awaiting-approval" else "")
        found.update(dict.fromkeys(wave["targets"], f"waits for wave {wave['name']}{why}"))
    return found


def _wave_state(p: Progress, w: Wave) -> str:
    if w.completed_at is not None:
        return "completed"
    if w.started_at is not None:
        return "halted" if p.phase == "halted" and p.halted_wave == w.name else "progressing"
    if w.needs_approval and w.approved_by is None and w.approval_requested:
        return "awaiting-approval"
    return "pending"


def _time(moment: dt.datetime | None) -> str | None:
    return hashing.format_time(moment) if moment is not None else None
