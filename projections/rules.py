"""One set of rules per stream category: an event a client submits is decided like its command.

Clients write ``target-*`` and ``deployment-*`` streams two ways: the commands (``PUT /v1/targets``,
``POST /v1/deployments/...``) and the generic ``POST /v1/streams/{stream}/events``. Both are decided
by the same pure functions of ``projections.commands``; this module turns a submitted event into the
command it stands for, decides it on the stream's state and checks that what the client said agrees
with the decision. What gets stored is the decided event, so no rule can be bypassed: selectors,
manifests, labels, the target's credential, revision numbering, matched targets, rollback targets,
the state a pause or a retirement needs.

Decisions:

- **Server-computed fields** (``SERVER_FIELDS``: revision numbers, ``matched_targets``, the
  ``scope`` of the token that sends it) are the server's. A client may leave ``matched_targets`` out; ``revision`` is required by the catalogue, so
  the client states the number it expects, as an optimistic check. Either, when supplied and
  different from the decision, is refused (:class:`Mismatch`, 422) naming the field.
- **The type is part of the claim.** ``TargetRegistered`` for a registered target is a conflict and
  ``TargetUpdated`` for an unknown one is not found, where the ``PUT`` command would pick the type
  itself. An update that changes nothing is a conflict: the command records nothing in that case,
  and a generic append always records what it was sent or nothing at all.
- A ``RevisionSubmitted`` without a ``selector`` keeps the current one, and is refused on the first
  revision, exactly as the command without one.
- A revision or rollback that would share an object with another deployment on a cluster is refused
  as its command is (projections/sharing.py), when the caller loaded ``Context.holders``.
- Fields are named relative to the submitted event: ``type``, or ``data.<path>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any, Final

from ledger import access, credentials, events
from projections import commands, fleet, freezerules, freezes, selectors, sharing

SERVER_FIELDS: Final[dict[type[events.Event], tuple[str, ...]]] = {
    events.RevisionSubmitted: ("revision", "matched_targets", "scope", "waves"),
    events.RolledBack: ("revision", "matched_targets", "scope", "strategy", "waves"),
}
# Types whose decision resolves matched targets (the caller loads the fleet's targets for them).
NEEDS_TARGETS: Final = frozenset(SERVER_FIELDS)
# ... and those that need them only to keep a scoped token inside its scope.
NEEDS_TARGETS_WHEN_SCOPED: Final = frozenset(
    {events.DeploymentPaused, events.DeploymentResumed, events.DeploymentRemoved})
# Types that are decided on an empty stream in the common case (a target's first registration): a
# write starting with one is decided first without reading its stream (api/submission.py).
CREATES: Final = frozenset({events.TargetRegistered})


class Mismatch(commands.Invalid):
    """A server-computed field that the client supplied with another value."""


@dataclass(frozen=True)
class Context:
    """What the commands get from the request besides the stream's state."""

    targets: Mapping[str, fleet.Target] = field(default_factory=dict)  # for the types that need them
    scope: events.Scope = field(default_factory=events.Scope)  # the sending token's
    catalogue: credentials.Catalogue = field(default_factory=dict)  # the operator's credentials, now
    freezes: Mapping[str, freezes.Freeze] = field(default_factory=dict)  # for the types in NEEDS_TARGETS
    now: dt.datetime | None = None  # when freezes are judged
    # Other deployments that may share an object with a revision, and the stream's own revisions with
    # their manifests (loading.holders), for the types in NEEDS_TARGETS; None: not checked.
    holders: fleet.Fleet | None = None


def _data(field: str | None) -> str | None:
    return None if field is None else f"data.{field}"


def _register(state: fleet.Fleet, event: events.TargetRegistered | events.TargetUpdated,
              ctx: Context) -> events.AnyEvent:
    current = state.targets.get(event.target)
    decided = commands.register_target(
        current, commands.RegisterTarget(event.target, dict(event.labels), access.of(event)), ctx.catalogue)
    if decided is None:
        raise commands.Conflict(f"target {event.target} already has exactly these settings; "
                                "an update must change something", field="type")
    if type(decided) is not type(event):
        if current is not None:
            raise commands.Conflict(f"target {event.target} is already registered (version "
                                    f"{current.version}); send TargetUpdated to change it", field="type")
        raise commands.NotFound(f"target {event.target} is not registered; send TargetRegistered first",
                                field="type")
    return decided


def _retire(state: fleet.Fleet, event: events.TargetRetired, _ctx: Context) -> events.AnyEvent:
    return commands.retire_target(event.target, state.targets.get(event.target))


def _submit(state: fleet.Fleet, event: events.RevisionSubmitted, ctx: Context, present: Set[str]) -> events.AnyEvent:
    selector = event.selector if "selector" in present else None
    decided = commands.submit_revision(state.deployments.get(event.deployment), commands.SubmitRevision(
        event.deployment, event.manifests, selector, event.message, ctx.scope,
        event.progress_deadline_seconds, event.self_heal, event.strategy), ctx.targets)
    if ctx.holders is not None:
        sharing.check(event.deployment, decided.manifests, decided.matched_targets,
                      sharing.holdings(ctx.holders, event.deployment))
    return _admit(decided, event.override, ctx)


def _roll_back(state: fleet.Fleet, event: events.RolledBack, ctx: Context) -> events.AnyEvent:
    decided = commands.roll_back(state.deployments.get(event.deployment), commands.RollBack(
        event.deployment, event.to_revision, event.message, ctx.scope), ctx.targets)
    if ctx.holders is not None:
        sharing.check(event.deployment, sharing.restored(event.deployment, event.to_revision, ctx.holders, state),
                      decided.matched_targets, sharing.holdings(ctx.holders, event.deployment),
                      field="to_revision", what=f"revision {event.to_revision}'s ")
    return _admit(decided, event.override, ctx)


def _admit(decided: freezerules.Revision, override: events.FreezeOverride | None,
           ctx: Context) -> freezerules.Revision:
    """Freezes decide as for the command: refused when every target is frozen, unless overridden."""
    if ctx.now is None:
        return decided
    return freezerules.admit(decided, ctx.targets, ctx.freezes, ctx.now,
                             override.reason if override is not None else None)


def _lifecycle(command: Callable[[str, fleet.Deployment | None, str], events.AnyEvent]) -> _Rule:
    """Pause, resume, remove: the deployment's current state, kept within the sender's scope."""

    def rule(state: fleet.Fleet, event: Any, ctx: Context) -> events.AnyEvent:
        deployment = state.deployments.get(event.deployment)
        commands.within_scope(event.deployment, deployment, ctx.scope, ctx.targets)
        return command(event.deployment, deployment, event.reason)

    return rule


_Rule = Callable[[fleet.Fleet, Any, Context], events.AnyEvent]
# The client-writable types and the command each stands for; a type missing here is not a client's.
RULES: Final[dict[type[events.Event], _Rule]] = {
    events.TargetRegistered: _register,
    events.TargetUpdated: _register,
    events.TargetRetired: _retire,
    events.RolledBack: _roll_back,
    events.DeploymentPaused: _lifecycle(commands.pause),
    events.DeploymentResumed: _lifecycle(commands.resume),
    events.DeploymentRemoved: _lifecycle(commands.remove),
}


def decide(state: fleet.Fleet, submitted: events.AnyEvent, present: Set[str], ctx: Context) -> events.AnyEvent:
    """The event to store for ``submitted`` on ``state``, or a ``commands.DomainError`` /
    ``selectors.InvalidInput`` naming the field relative to the submitted event.

    ``present`` holds the data fields the client actually sent; ``ctx.targets`` (the fleet's, retired
    included) must be loaded for the types in ``NEEDS_TARGETS`` (and, for a scoped sender,
    ``NEEDS_TARGETS_WHEN_SCOPED``).
    """
    decided: events.AnyEvent
    try:
        if isinstance(submitted, events.RevisionSubmitted):
            decided = _submit(state, submitted, ctx, present)
        else:
            rule = RULES.get(type(submitted))
            if rule is None:
                raise commands.Invalid(f"{events.type_name(submitted)} is recorded by the ledger itself, "
                                       "never submitted", field="type")
            decided = rule(state, submitted, ctx)
    except commands.DomainError as exc:
        if exc.field != "type":
            exc.field = _data(exc.field)
        raise
    except selectors.InvalidInput as exc:
        exc.field = f"data.{exc.field}"
        raise
    for name in SERVER_FIELDS.get(type(submitted), ()):
        wanted = getattr(decided, name)
        if name in present and getattr(submitted, name) != wanted:
            raise Mismatch(f"{name} is computed by the server: it is {wanted!r} here, not "
                           f"{getattr(submitted, name)!r}", field=f"data.{name}")
    return decided
