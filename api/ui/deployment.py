"""The deployment page and its actions.

``/deployments/{name}?from=&to=&recorded=&page=`` shows the current revision and its rollout
(per-target state with the last error or reason, the worst first, ``TARGETS_PER_PAGE`` a page), the history (who, when, why, selector, targets matched, what a
rollback restored), the diff between any two revisions (``from``/``to``, by default the current
one against its predecessor), and the deployment's latest events.

Actions are forms that POST to ``/deployments/{name}/{rollback|pause|resume}`` (and, for a rollout
in waves, ``approve``, ``promote`` and ``halt``: api/ui/rollout.py); each asks for a reason, goes through the very command the API's route runs (api/deployments.py: same decision,
same scope checks, same event), records the reason in the event and its metadata, and redirects
back with ``?recorded=<position>`` so the page shows the event it recorded. Only a token that may
use an action is offered it (api/ui/render.py ``can``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from api import deployments as deployments_api
from api import keys, params, problems, reads
from api import rollouts as rollouts_api
from api.ui import fleet, queries, render, rollout, sessions
from ledger import events
from projections import commands, diffs, loading, views
from projections import queries as read_models

routes = web.RouteTableDef()
REASON_MAX: Final = 1000
HISTORY: Final = 100
# Targets a page shows, the worst state first (the page of a deployment on 1,000 targets stays light).
TARGETS_PER_PAGE: Final = 200
_RANK: Final = {state: i for i, state in enumerate(fleet.SEVERITY)}


def _diff_lines(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        found.append((kind, line))
    return found


@routes.get("/deployments/{name}", name="ui.deployment")
async def page(request: web.Request) -> web.Response:
    name = reads.name_param(request, "deployment name")
    page_number = params.integer(request, "page", 1)
    if page_number < 1:
        raise problems.invalid("page", f"must be at least 1, got {page_number}")
    wanted_from = params.optional(request, "from")
    wanted_to = params.optional(request, "to")
    recorded_at = params.optional(request, "recorded")
    await reads.wait_for_position(request)
    table = await loading.freezes_now(request.app[keys.STORE], timeout=request.app[keys.SETTINGS].db_timeout)
    async with reads.connection(request) as conn:
        current = await read_models.deployment(conn, name, table=table, now=dt.datetime.now(dt.UTC))
        if current is None:
            raise problems.Problem(404, "Not found", f"deployment {name} has no revisions (or none projected yet)")
        first = max(1, current["current_revision"] - HISTORY + 1)
        history = await read_models.revisions(conn, name, from_revision=first, limit=HISTORY)
        assert history is not None
        to = wanted_to or current["current_revision"]
        start = wanted_from or max(to - 1, 1)
        old = await read_models.revision(conn, name, start)
        new = await read_models.revision(conn, name, to)
        if old is None or new is None:
            missing = "from" if old is None else "to"
            raise problems.invalid(missing, f"deployment {name} has no revision {start if old is None else to}")
        diff = diffs.unified_diff(read_models.manifests(old), read_models.manifests(new),
                                  from_label=f"{name}/revisions/{start}", to_label=f"{name}/revisions/{to}")
        recorded = await queries.event_at(conn, recorded_at) if recorded_at else None
        latest = await queries.deployment_events(conn, name)
        in_waves = await queries.in_waves(conn, name)
    waved = await rollout.load(request, name, in_waves)
    if rollout.explain(current["rollouts"], waved.view):
        current["summary"] = views.summary(r["state"] for r in current["rollouts"])
    rows = sorted(current["rollouts"], key=lambda r: (_RANK.get(r["state"], len(_RANK)), r["target"]))
    pages = max(1, -(-len(rows) // TARGETS_PER_PAGE))
    query = {k: v for k, v in request.query.items() if k in ("from", "to")}
    if recorded is not None and recorded.stream not in (f"deployment-{name}", f"rollout-{name}"):
        recorded = None
    return render.page(request, "deployment.html", {
        "d": current, "history": list(reversed(history["revisions"])), "diff": _diff_lines(diff),
        "diff_from": start, "diff_to": to, "recorded": recorded, "events": latest,
        "numbers": list(range(current["current_revision"], 0, -1)), "rollout": waved,
        "rows": rows[(page_number - 1) * TARGETS_PER_PAGE:page_number * TARGETS_PER_PAGE],
        "page": page_number, "pages": pages, "query": query, "per_page": TARGETS_PER_PAGE,
        "live_types": LIVE_TYPES,
    })


# An action takes the form and its reason and returns the position of the event it recorded.
Action = Callable[[web.Request, str, dict[str, str], str], Awaitable[int]]


async def _rollback(request: web.Request, name: str, form: dict[str, str], reason: str) -> int:
    raw = form.get("to_revision", "")
    to_revision = params.parse("to_revision", raw, params.REVISION)
    written = await deployments_api.roll_back_to(request, name, to_revision, reason, metadata={"reason": reason})
    return written.position


def _lifecycle(command: Callable[[str, Any, str], Any]) -> Action:
    async def act(request: web.Request, name: str, _form: dict[str, str], reason: str) -> int:
        written = await deployments_api.change(request, name, command, reason, metadata={"reason": reason})
        return written.position
    return act


async def _resume(request: web.Request, name: str, form: dict[str, str], reason: str) -> int:
    """Resume as the API's ``/resume`` does: a halted rollout (not paused) if there is one, else the
    paused deployment."""
    if await rollouts_api.halted(request, name):
        return await rollout.resume(request, name, form, reason)
    return await _lifecycle(commands.resume)(request, name, form, reason)


ACTIONS: Final[dict[str, Action]] = {
    "rollback": _rollback,
    "pause": _lifecycle(commands.pause),
    "resume": _resume,
    "approve": rollout.approve,
    "promote": rollout.promote,
    "halt": rollout.halt,
}
# What the page follows live: whatever moves the deployment, its rollout, or a freeze over it.
LIVE_TYPES: Final = tuple(sorted(t for t, (category, _) in events.CATEGORY.items() if category != "token"))


async def _act(request: web.Request, action: str) -> web.Response:
    name = reads.name_param(request, "deployment name")
    posted = await request.post()
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    sessions.check_form(request, form)
    reason = form.get("reason", "").strip()
    if not reason:
        raise problems.invalid("reason", "say why: every action records its reason")
    if len(reason) > REASON_MAX or "\x00" in reason:
        raise problems.invalid("reason", f"at most {REASON_MAX} characters, no NUL")
    position = await ACTIONS[action](request, name, form, reason)
    raise web.HTTPSeeOther(f"/deployments/{name}?recorded={position}#recorded")


@routes.post("/deployments/{name}/rollback", name="ui.rollback")
async def rollback(request: web.Request) -> web.Response:
    return await _act(request, "rollback")


@routes.post("/deployments/{name}/pause", name="ui.pause")
async def pause(request: web.Request) -> web.Response:
    return await _act(request, "pause")


@routes.post("/deployments/{name}/resume", name="ui.resume")
async def resume(request: web.Request) -> web.Response:
    return await _act(request, "resume")


@routes.post("/deployments/{name}/approve", name="ui.approve")
async def approve(request: web.Request) -> web.Response:
    return await _act(request, "approve")


@routes.post("/deployments/{name}/promote", name="ui.promote")
async def promote(request: web.Request) -> web.Response:
    return await _act(request, "promote")


@routes.post("/deployments/{name}/halt", name="ui.halt")
async def halt(request: web.Request) -> web.Response:
    return await _act(request, "halt")
