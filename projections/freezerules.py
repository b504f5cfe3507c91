"""Freeze decisions and the freeze gate, pure: setting and removing a freeze, refusing a revision
whose every target is frozen, and telling the applier whether a target may receive a revision now.

Decisions (docs/freezes.md):

- **A freeze holds revisions, not the fleet.** While a freeze covers a target, no revision other
  than the one it has (the last applied there, ``applied_revision``) reaches it; it keeps that one,
  drift healing included. Prunes (a removed deployment, a target no longer selected) go on: pause a
  deployment to hold everything of it.
- **Refusal at submission.** A revision (or rollback) whose matched targets are all frozen at
  submission is refused (409, :class:`Frozen`, naming the freezes and until when); one that reaches
  some unfrozen targets is recorded, and the applier holds it at the frozen ones until their
  windows close.
- **Override.** An admin's ``override {reason}`` is recorded in the revision (with the freezes that
  covered its targets then) and lets that revision through every freeze, now and later. Who may
  pass one is the API's concern (admins only); this module records it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from ledger import events, hashing
from projections import commands, fleet, freezes


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    """Why a target may not receive a deployment's revision now, and when to look again."""

    freezes: tuple[str, ...]
    until: dt.datetime


class Frozen(commands.Conflict):
    """Every target a revision would reach is frozen; ``members`` go into the problem+json."""

    def __init__(self, message: str, covers: dict[str, list[freezes.Cover]]) -> None:
        super().__init__(message)
        names: dict[str, dt.datetime] = {}
        for found in covers.values():
            for cover in found:
                names[cover.freeze] = max(cover.until, names.get(cover.freeze, cover.until))
        self.members: dict[str, Any] = {"freezes": [
            {"name": name, "until": hashing.format_time(until),
             "targets": sorted(t for t, found in covers.items() if any(c.freeze == name for c in found))}
            for name, until in sorted(names.items())]}


def set_freeze(current: freezes.Freeze | None, name: str, selector: str, reason: str,
               schedule: events.FreezeSchedule, now: dt.datetime) -> events.FreezeSet | None:
    """FreezeSet for a new or changed freeze (None: it is in force with exactly these settings)."""
    try:
        canonical, checked = freezes.validate(selector, reason, schedule, now)
    except freezes.Invalid as exc:
        raise commands.Invalid(exc.message, field=exc.field) from exc
    event = events.FreezeSet(name=name, schedule=checked, selector=canonical, reason=reason)
    if (current is not None and not current.removed
            and (current.selector, current.reason, current.schedule) == (canonical, reason, checked)):
        return None
    return event


def remove_freeze(current: freezes.Freeze | None, name: str, reason: str) -> events.FreezeRemoved:
    if current is None or current.removed:
        raise commands.NotFound(f"freeze {name} does not exist")
    return events.FreezeRemoved(name=name, reason=reason)


def covers(targets: Mapping[str, fleet.Target], names: list[str], table: Mapping[str, freezes.Freeze],
           now: dt.datetime) -> dict[str, list[freezes.Cover]]:
    """The freezes that hold each of the targets ``names`` at ``now`` (targets held by none left out)."""
    found: dict[str, list[freezes.Cover]] = {}
    for name in names:
        target = targets.get(name)
        if target is None or target.retired:
            continue
        held = freezes.covering(table, target.labels, now)
        if held:
            found[name] = held
    return found


Revision = TypeVar("Revision", events.RevisionSubmitted, events.RolledBack)


def admit(decided: Revision, targets: Mapping[str, fleet.Target], table: Mapping[str, freezes.Freeze],
          now: dt.datetime, override: str | None) -> Revision:
    """``decided`` as it is to be recorded (with the override filled in), or :class:`Frozen` when
    every matched target is frozen and there is no override."""
    if override is not None and not override.strip():
        raise commands.Invalid("say why the freeze is overridden", field="override.reason")
    held = covers(targets, list(decided.matched_targets), table, now) if table else {}
    if override is not None:
        return msgspec.structs.replace(decided, override=events.FreezeOverride(
            reason=override, freezes=sorted({c.freeze for found in held.values() for c in found})))
    if decided.matched_targets and len(held) == len(decided.matched_targets):
        parts = []
        for name in sorted({c.freeze for found in held.values() for c in found}):
            until = max(c.until for found in held.values() for c in found if c.freeze == name)
            parts.append(f"{name} (until {hashing.format_time(until)})")
        raise Frozen(f"every target revision {decided.revision} of {decided.deployment} would reach is frozen, "
                     f"by freeze {', '.join(parts)}; an admin may pass override {{reason}}", held)
    return decided


def holding(table: Mapping[str, freezes.Freeze], labels: Mapping[str, str], now: dt.datetime, *,
            revision: int, applied_revision: int | None, overridden: bool) -> Hold | None:
    """The freeze gate: a target with ``labels`` must not receive ``revision`` at ``now`` when it
    does not have it yet, the revision carries no override and a freeze covers the target."""
    if overridden or applied_revision == revision or not table:
        return None
    held = freezes.covering(table, labels, now)
    if not held:
        return None
    return Hold(tuple(c.freeze for c in held), max(c.until for c in held))


def hold(state: fleet.Fleet, deployment: str, target: str, now: dt.datetime,
         revision: int | None = None) -> Hold | None:
    """Whether ``target`` must not receive ``revision`` of ``deployment`` (default: its current one)
    at ``now`` (:func:`holding`)."""
    found = state.deployments.get(deployment)
    where = state.targets.get(target)
    if found is None or where is None or not state.freezes:
        return None
    number = found.current_revision if revision is None else revision
    recorded = found.revisions.get(number)
    rollout = found.rollouts.get(target)
    if recorded is None:
        return None
    return holding(state.freezes, where.labels, now, revision=number, overridden=bool(recorded.override),
                   applied_revision=rollout.applied_revision if rollout is not None else None)


# The rollout states in which a target waits for its desired revision: held there by a freeze, it
# is shown ``frozen`` (the web UI's cell, ``ledger status``), naming the freezes.
WAITING: Final = frozenset({"pending", "applying"})


def shown_frozen(table: Mapping[str, freezes.Freeze], labels: Mapping[str, str], now: dt.datetime, *,
                 state: str, revision: int, applied_revision: int | None, overridden: bool) -> Hold | None:
    """Whether a rollout in ``state`` is shown frozen: it waits for a revision the gate holds."""
    if state not in WAITING:
        return None
    return holding(table, labels, now, revision=revision, applied_revision=applied_revision,
                   overridden=overridden)


def view(found: Hold) -> dict[str, Any]:
    return {"freezes": list(found.freezes), "until": hashing.format_time(found.until)}


def kept(state: fleet.Fleet, deployment: str, target: str) -> int | None:
    """The revision a held target keeps (and that drift healing re-applies): the last it applied."""
    found = state.deployments.get(deployment)
    rollout = found.rollouts.get(target) if found is not None else None
    return rollout.applied_revision if rollout is not None else None
