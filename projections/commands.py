"""Commands as pure decisions: current state + a command -> the event to record, or a domain error.

The HTTP layer loads state (the stream folded through ``projections.fleet``), calls one of these and
appends what comes back; nothing here does I/O, so every rule is tested without a database.

Decisions:

- Each command yields at most one event. ``None`` means "nothing to record": a PUT of a target with
  exactly its current settings is a no-op, not a new version.
- Revisions are numbered by the server: one more than the highest revision the stream has ever had,
  so numbers are never reused, not even after removal (a new revision revives a removed deployment).
  Numbers stop at ``events.INT32_MAX``, the read models' column type.
- A revision's manifests are validated here (``projections.manifests``), so every path that submits
  one (the command, the generic append through ``projections.rules``) checks them alike.
- The first revision must name a selector (``""`` targets every cluster, as in Kubernetes); later
  ones keep the current selector unless they name another.
- A rollback restores the manifests and the selector of ``to_revision``; its matched targets are
  resolved with that selector. Rolling back to the current revision is refused: it would change
  nothing.
- A scoped command (the token's target selector, api/auth.py) is refused when the deployment now
  reaches a target outside the scope, and what it records carries the scope, so the revision can
  only ever reach targets inside it (projections/fleet.py ``targeting``).
- Retired target names are not reused: a retired target refuses every command, so history never
  mixes two clusters under one name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import access as access_mod
from ledger import credentials, events, rollouts
from projections import fleet, labelled, manifests, selectors, strategies


class DomainError(Exception):
    """A command that the current state refuses; ``field`` names the input at fault, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The deployment or target does not exist."""


class Conflict(DomainError):
    """The command contradicts the current state (paused already, removed, retired, ...)."""


class Invalid(DomainError):
    """The command refers to something that does not exist or is malformed."""


class OutOfScope(DomainError):
    """The command would act on targets outside the scope of the token that sent it."""


@dataclass(frozen=True)
class RegisterTarget:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    access: access_mod.Access = access_mod.NONE


@dataclass(frozen=True)
class SubmitRevision:
    deployment: str
    manifests: list[dict[str, Any]]
    selector: str | None = None
    message: str = ""
    scope: events.Scope = field(default_factory=events.Scope)
    progress_deadline_seconds: int = events.PROGRESS_DEADLINE_SECONDS
    self_heal: bool = True
    strategy: rollouts.Strategy | None = None


@dataclass(frozen=True)
class RollBack:
    deployment: str
    to_revision: int
    message: str = ""
    scope: events.Scope = field(default_factory=events.Scope)


def _live_target(name: str, target: fleet.Target | None) -> fleet.Target:
    if target is None:
        raise NotFound(f"target {name} is not registered")
    if target.retired:
        raise Conflict(f"target {name} was retired (version {target.version}); a retired name is not reused")
    return target


def check_access(found: access_mod.Access, catalogue: credentials.Catalogue) -> None:
    """The registration check of a target's access (ledger.access.check) as a domain refusal."""
    try:
        access_mod.check(found, catalogue)
    except access_mod.AccessError as exc:
        raise Invalid(exc.message, field=exc.field) from exc


def register_target(target: fleet.Target | None, command: RegisterTarget,
                    catalogue: credentials.Catalogue) -> events.TargetRegistered | events.TargetUpdated | None:
    """TargetRegistered for a new name, TargetUpdated for a change, None when nothing changes.

    ``catalogue`` is the operator's credentials as loaded now: the target must name one of them.
    """
    selectors.validate_labels(command.labels)
    check_access(command.access, catalogue)
    fields = access_mod.as_dict(command.access)
    if target is None:
        return events.TargetRegistered(target=command.name, labels=dict(command.labels), **fields)
    _live_target(command.name, target)
    if (command.labels, command.access) == (target.labels, target.access):
        return None
    return events.TargetUpdated(target=command.name, labels=dict(command.labels), **fields)


def retire_target(name: str, target: fleet.Target | None) -> events.TargetRetired:
    _live_target(name, target)
    return events.TargetRetired(target=name)


def _existing(name: str, deployment: fleet.Deployment | None) -> fleet.Deployment:
    if deployment is None or not deployment.revisions:
        raise NotFound(f"deployment {name} has no revisions")
    return deployment


def _active(name: str, deployment: fleet.Deployment | None) -> fleet.Deployment:
    found = _existing(name, deployment)
    if found.removed:
        raise Conflict(f"deployment {name} was removed (version {found.version}); "
                       "submit a new revision to bring it back")
    return found


def _matched(targets: Mapping[str, fleet.Target], selector: selectors.Selector) -> list[str]:
    names = labelled.candidates(targets, selector)
    if names is None:
        return sorted(n for n, t in targets.items() if not t.retired and selector.matches(t.labels))
    return sorted(n for n in names if not (t := targets[n]).retired and selector.matches(t.labels))


def within_scope(name: str, deployment: fleet.Deployment | None, scope: events.Scope,
                 targets: Mapping[str, fleet.Target]) -> None:
    """Refuse a scoped command on a deployment that now reaches a target outside the scope: the
    command would change what runs there (a new revision, a rollback, a pause all do)."""
    if not scope.targets or deployment is None or deployment.removed or deployment.current_revision == 0:
        return
    allowed = selectors.parse(scope.targets, field="targets")
    reach = fleet.selector_of(fleet.targeting(deployment)) or selectors.Selector()
    outside = [n for n in _matched(targets, reach) if not allowed.matches(targets[n].labels)]
    if outside:
        raise OutOfScope(f"deployment {name} now reaches {', '.join(outside[:5])}"
                         f"{' and more' if len(outside) > 5 else ''}, outside this token's targets scope "
                         f"{scope.targets!r}", field="scope")


def next_revision(deployment: fleet.Deployment | None) -> int:
    number = max(deployment.revisions, default=0) + 1 if deployment is not None else 1
    if number > events.INT32_MAX:
        name = deployment.name if deployment is not None else "?"
        raise Conflict(f"deployment {name} has used every revision number up to {events.INT32_MAX}")
    return number


def submit_revision(deployment: fleet.Deployment | None, command: SubmitRevision,
                    targets: Mapping[str, fleet.Target]) -> events.RevisionSubmitted:
    """The next revision; ``targets`` (the fleet's, retired included) resolve ``matched_targets``."""
    within_scope(command.deployment, deployment, command.scope, targets)
    text = command.selector
    if text is None:
        if deployment is None or not deployment.revisions:
            raise Invalid(f"deployment {command.deployment} has no revision yet, so its first one must "
                          'name a selector ("" targets every cluster)', field="selector")
        text = deployment.selector
    selector = selectors.parse(text)
    checked = manifests.validate(command.manifests)
    reach = selectors.parse(fleet.conjunction(str(selector), command.scope.targets))
    matched = _matched(targets, reach)
    return events.RevisionSubmitted(
        deployment=command.deployment,
        revision=next_revision(deployment),
        manifests=checked,
        selector=str(selector),
        message=command.message,
        matched_targets=matched,
        scope=command.scope,
        progress_deadline_seconds=command.progress_deadline_seconds,
        self_heal=command.self_heal,
        strategy=command.strategy,
        waves=waves_of(command.strategy, matched, targets),
    )


def waves_of(strategy: rollouts.Strategy | None, matched: Sequence[str],
             targets: Mapping[str, fleet.Target]) -> list[rollouts.WaveMembers]:
    """The waves a strategy makes of ``matched`` (none without a strategy); refusals name the field."""
    if strategy is None:
        return []
    labels = {n: targets[n].labels for n in matched if n in targets}
    try:
        return strategies.assign(strategy, matched, labels)
    except strategies.StrategyError as exc:
        raise Invalid(exc.message, field=exc.field) from exc


def roll_back(deployment: fleet.Deployment | None, command: RollBack,
              targets: Mapping[str, fleet.Target]) -> events.RolledBack:
    found = _active(command.deployment, deployment)
    within_scope(command.deployment, found, command.scope, targets)
    base = found.revisions.get(command.to_revision)
    if base is None:
        known = _ranges(sorted(found.revisions))
        raise Invalid(f"deployment {command.deployment} has no revision {command.to_revision}; "
                      f"it has {known}", field="to_revision")
    if command.to_revision == found.current_revision:
        raise Conflict(f"revision {command.to_revision} of {command.deployment} is already current",
                       field="to_revision")
    selector = fleet.selector_of(fleet.conjunction(base.selector, base.scope, command.scope.targets))
    return events.RolledBack(
        deployment=command.deployment,
        revision=next_revision(found),
        to_revision=command.to_revision,
        message=command.message or f"roll back to revision {command.to_revision}",
        matched_targets=_matched(targets, selector or selectors.Selector()),
        scope=command.scope,
    )


def pause(name: str, deployment: fleet.Deployment | None, reason: str) -> events.DeploymentPaused:
    found = _active(name, deployment)
    if found.paused:
        since = f": {found.pause_reason}" if found.pause_reason else ""
        raise Conflict(f"deployment {name} is already paused{since}")
    return events.DeploymentPaused(deployment=name, reason=reason)


def resume(name: str, deployment: fleet.Deployment | None, reason: str) -> events.DeploymentResumed:
    found = _active(name, deployment)
    if not found.paused:
        raise Conflict(f"deployment {name} is not paused")
    return events.DeploymentResumed(deployment=name, reason=reason)


def remove(name: str, deployment: fleet.Deployment | None, reason: str) -> events.DeploymentRemoved:
    _active(name, deployment)
    return events.DeploymentRemoved(deployment=name, reason=reason)


def _ranges(numbers: Sequence[int]) -> str:
    if not numbers:
        return "none"
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}" if start == prev else f"{start}..{prev}")
        if n is not None:
            start = prev = n
    return "revisions " + ", ".join(parts)
