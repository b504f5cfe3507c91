"""How fleet state looks to clients: one JSON shape per thing, whatever it was read from.

The read-model queries turn their rows back into ``projections.fleet`` structs and the point-in-time
replay folds events into the same structs; both render through these functions. So the live read
models and ``/v1/state?at=head`` cannot differ in shape, only in content, and a test holds the
content to equality.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Final

from ledger import access, hashing
from projections import fleet, freezes, waves

STATES: Final[tuple[str, ...]] = fleet.STATES


def time(moment: dt.datetime | None) -> str | None:
    return hashing.format_time(moment) if moment is not None else None


def target(t: fleet.Target) -> dict[str, Any]:
    return {
        "name": t.name,
        "labels": dict(sorted(t.labels.items())),
        **access.as_dict(t.access),
        "retired": t.retired,
        "version": t.version,
        "position": t.position,
        "registered_at": time(t.registered_at),
        "updated_at": time(t.updated_at),
    }


def rollout(deployment: str, r: fleet.Rollout) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "target": r.target,
        "desired_revision": r.desired_revision,
        "applied_revision": r.applied_revision,
        "state": r.state,
        "outcome": r.outcome,
        "last_error": r.last_error,
        "last_attempt_at": time(r.last_attempt_at),
        "attempts": r.attempts,
        "objects_applied": r.objects_applied,
        "health": r.health,
        "reason": r.reason,
        "message": r.message,
    }


def summary(states: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    total = 0
    for state in states:
        counts[state] = counts.get(state, 0) + 1
        total += 1
    return {"targets": total, **counts}


def deployment(d: fleet.Deployment, states: Iterable[str]) -> dict[str, Any]:
    return {
        "name": d.name,
        "current_revision": d.current_revision,
        "selector": d.selector,
        "paused": d.paused,
        "pause_reason": d.pause_reason,
        "removed": d.removed,
        "version": d.version,
        "position": d.position,
        "created_at": time(d.created_at),
        "updated_at": time(d.updated_at),
        "summary": summary(states),
    }


def revision(deployment_name: str, r: fleet.Revision) -> dict[str, Any]:
    return {
        "deployment": deployment_name,
        "revision": r.number,
        "actor": r.actor,
        "recorded_at": time(r.recorded_at),
        "message": r.message,
        "selector": r.selector,
        "matched_targets": list(r.matched_targets),
        "rolled_back_to": r.rolled_back_to,
        "position": r.position,
        "progress_deadline_seconds": r.progress_deadline_seconds,
        "self_heal": r.self_heal,
        "override": {"reason": r.override, "freezes": list(r.override_freezes)} if r.override else None,
    }


def frozen(f: fleet.Fleet, now: dt.datetime | None) -> list[dict[str, Any]]:
    """The freezes in force (not removed), with whether each held at ``now`` and what it selects."""
    live = {name: t for name, t in f.targets.items() if not t.retired}
    return [freezes.view(fr, now, [n for n, t in live.items() if freezes.selects(fr, t.labels)])
            for _, fr in sorted(f.freezes.items()) if not fr.removed]


def state(f: fleet.Fleet, now: dt.datetime | None = None) -> dict[str, Any]:
    """The whole fleet: every deployment with its rollouts, every target with what it runs, and the
    freezes in force, each said active or not at ``now`` (default: when the last event was recorded)."""
    per_target: dict[str, list[dict[str, Any]]] = {name: [] for name in f.targets}
    deployments = []
    for name in sorted(f.deployments):
        d = f.deployments[name]
        rollouts = [rollout(name, d.rollouts[t]) for t in sorted(d.rollouts)]
        for r in rollouts:
            per_target.setdefault(r["target"], []).append(r)
        deployments.append({**deployment(d, (r["state"] for r in rollouts)), "rollouts": rollouts})
    targets = [{**target(f.targets[name]), "rollouts": per_target.get(name, [])} for name in sorted(f.targets)]
    return {
        "position": f.position,
        "recorded_at": time(f.recorded_at),
        "targets": targets,
        "deployments": deployments,
        "freezes": frozen(f, now or f.recorded_at),
        "rollouts": progressive(f),
    }


def progressive(f: fleet.Fleet) -> list[dict[str, Any]]:
    """Each deployment's progressive rollout of its current revision, as it stood (waves, approvals)."""
    found = []
    for name in sorted(f.deployments):
        d = f.deployments[name]
        shown = waves.view(d.progress) if not d.removed and d.progress is not None \
            and d.progress.revision == d.current_revision else None
        if shown is not None:
            found.append({"deployment": name, **shown})
    return found
