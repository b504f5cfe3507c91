"""The deployment page's rollout: its waves, what holds its targets, and the rollout's actions.

A revision with a strategy rolls out in waves (issue 13). The page shows them as the API's
``GET /v1/deployments/{name}/rollout`` does (projections/waves.py ``view``: the same fold of the
deployment's two streams), each wave with its number, members, state, healthy and failing counts,
approval, start and end; and each target's state in the words every client uses (pending, applying,
progressing, healthy, degraded, failed, paused), with ``frozen`` for a target a freeze window holds
while it waits (as on the fleet page).

Actions are forms that POST to ``/deployments/{name}/{approve|promote|halt}`` (and ``/resume``,
which resumes a halted rollout as the API's ``/resume`` does, api/ui/deployment.py). Each asks for a
reason, runs the very command of the API's route (api/rollouts.py: same decision, four eyes, scope
checks, event ids), records the reason in the event's metadata, and redirects back with
``?recorded=<position>``. A control is offered only when the token's role may use it (approve:
``approve``; promote, halt, resume: ``deploy``) and the rollout is in a state where it applies;
whoever submitted a revision is told that another approver must approve it instead of being offered
a button that would be refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from api import auth, keys, rollouts
from projections import fleet, freezerules, loading, waves


@dataclass
class Rollout:
    """What the page shows of a rollout and which of its actions apply now."""

    view: dict[str, Any] | None
    approvable: list[str] = field(default_factory=list)  # waves an approver may approve now
    promotable: list[str] = field(default_factory=list)  # waves soaking, which promote starts now
    may_halt: bool = False
    may_resume: bool = False
    own_revision: bool = False  # the signed-in token (or whom it acts for) submitted this revision


def _actions(d: fleet.Deployment, p: waves.Progress, found: Rollout, request: web.Request) -> None:
    if d.removed or p.revision != d.current_revision:
        return
    if p.phase != "completed":
        found.approvable = [w.name for w in p.waves if w.needs_approval and w.approved_by is None]
    if p.phase == "rolling":
        found.may_halt = True
        found.promotable = [w.name for i, w in enumerate(p.waves)
                            if i > 0 and w.started_at is None and p.waves[i - 1].completed_at is not None
                            and not (w.needs_approval and w.approved_by is None)]
    found.may_resume = p.phase == "halted" and not d.paused
    token = request.get(auth.PRINCIPAL)
    if token is not None and token.role != "admin":
        submitted = {n for n in (p.submitter, p.submitter_for) if n}
        found.own_revision = bool(submitted & {n for n in (token.name, auth.on_behalf_of(request)) if n})


async def load(request: web.Request, name: str, in_waves: bool) -> Rollout:
    """The rollout of ``name``'s current revision, folded as the API folds it when ``in_waves`` (a
    revision without a strategy has no waves, and its deployment's history need not be folded)."""
    if not in_waves:
        return Rollout(None)
    state, _ = await loading.deployment_with_rollout(
        request.app[keys.STORE], request.app[keys.TARGETS], name, timeout=request.app[keys.SETTINGS].db_timeout)
    d = state.deployments.get(name)
    if d is None or d.progress is None or d.progress.strategy is None:
        return Rollout(None)
    found = Rollout(waves.view(d.progress))
    _actions(d, d.progress, found, request)
    return found


def explain(rows: list[dict[str, Any]], view: dict[str, Any] | None) -> bool:
    """Say why waiting targets wait: a freeze holding them (the API's ``frozen``, by the applier's
    own rule, projections/freezerules.py) makes the row ``frozen``; a wave that has not started says
    which, and what it waits for. Whether any row became ``frozen``."""
    waiting = waves.waiting(view)
    frozen = False
    for row in rows:
        hold = row.get("frozen")
        if hold is not None:
            row["state"] = "frozen"
            row["reason"] = f"held by freeze {', '.join(hold['freezes'])} until {hold['until']}"
            frozen = True
        elif row["state"] in freezerules.WAITING and row["target"] in waiting and not row.get("reason"):
            row["reason"] = waiting[row["target"]]
    return frozen


# The actions: each takes the form and its reason and returns the position of what it recorded.
async def approve(request: web.Request, name: str, form: dict[str, str], reason: str) -> int:
    recorded = await rollouts.approve_wave(request, name, form.get("wave", ""), reason, metadata={"reason": reason})
    return recorded.positions[0]


async def promote(request: web.Request, name: str, form: dict[str, str], reason: str) -> int:
    recorded = await rollouts.promote_wave(request, name, form.get("wave", ""), metadata={"reason": reason})
    return recorded.positions[0]


async def halt(request: web.Request, name: str, _form: dict[str, str], reason: str) -> int:
    recorded = await rollouts.halt_rollout(request, name, reason, metadata={"reason": reason})
    return recorded.positions[0]


async def resume(request: web.Request, name: str, _form: dict[str, str], reason: str) -> int:
    recorded = await rollouts.resume_rollout(request, name, reason, metadata={"reason": reason})
    return recorded.positions[0]
