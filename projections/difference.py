"""What differs between two folds of the fleet: the audit page's "what changed between two moments".

A pure comparison of two :class:`projections.fleet.Fleet` values, deployments first, then targets,
then per-target rollout states; its own module because the fold it compares runs in a lane worker
(api/lanejobs.py), which answers with the list, and the page (api/ui/audit.py) only renders it.
"""

from __future__ import annotations

import msgspec

from projections import fleet


class Change(msgspec.Struct, frozen=True):
    kind: str
    subject: str
    before: str
    after: str


def changes(old: fleet.Fleet, new: fleet.Fleet) -> list[Change]:
    """What differs between ``old`` and ``new``, deployments first, then targets, then cells."""
    found: list[Change] = []
    for name in sorted(set(old.deployments) | set(new.deployments)):
        was, now = _deployment_text(old.deployments.get(name)), _deployment_text(new.deployments.get(name))
        if was != now:
            found.append(Change("deployment", name, was, now))
    for name in sorted(set(old.targets) | set(new.targets)):
        was, now = _target_text(old.targets.get(name)), _target_text(new.targets.get(name))
        if was != now:
            found.append(Change("target", name, was, now))
    before, after = _rollout_states(old), _rollout_states(new)
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            found.append(Change("rollout", f"{key[0]} on {key[1]}", before.get(key, "—"), after.get(key, "—")))
    return found


def _deployment_text(deployment: fleet.Deployment | None) -> str:
    if deployment is None:
        return "absent"
    return (f"r{deployment.current_revision}" + (" paused" if deployment.paused else "")
            + (" removed" if deployment.removed else ""))


def _target_text(target: fleet.Target | None) -> str:
    if target is None:
        return "absent"
    labels = ",".join(f"{k}={v}" for k, v in sorted(target.labels.items()))
    return ("retired " if target.retired else "") + (labels or "(no labels)")


def _rollout_states(state: fleet.Fleet) -> dict[tuple[str, str], str]:
    return {(d.name, t): f"{r.state} r{r.desired_revision}" for d in state.deployments.values()
            for t, r in d.rollouts.items()}
