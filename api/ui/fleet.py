"""The fleet page: every target against every deployment, or targets grouped by a label.

``/fleet?selector=&group=&page=`` shows one page of targets (``PER_PAGE``) as rows and every
deployment as a column; each cell is the target's rollout state for that deployment as a word and
a colour, with the revision it concerns. Column headers count states over every target the
selector matches, row headers over the row. With ``group=<label key>`` the rows are that label's
values and each cell counts the group's states, so a fleet of thousands fits one screen.

``/fleet/matrix`` is the same matrix alone, for the page's script: on every event of the live feed
that can change a cell it asks again with ``min_position`` (the read models wait until they have
folded that event, api/reads.py) and patches what changed in place.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from aiohttp import web

from api import params, problems, reads
from api.ui import queries, render
from projections import selectors

routes = web.RouteTableDef()

PER_PAGE: Final = 100
_LABEL_KEY_MAX: Final = 317
# The worst state first: a grouped cell takes the colour of the worst state in it.
SEVERITY: Final = ("failed", "degraded", "frozen", "paused", "applying", "progressing", "pending", "applied",
                   "healthy")


def _selector(request: web.Request) -> tuple[str, selectors.Selector | None]:
    text = request.query.get("selector", "").strip()
    if not text:
        return "", None
    try:
        return text, selectors.parse(text, field="selector")
    except selectors.SelectorError as exc:
        raise problems.invalid("selector", f"{exc.message} at position {exc.position}") from exc


def _group(request: web.Request) -> str:
    group = request.query.get("group", "").strip()
    if len(group) > _LABEL_KEY_MAX or any(c.isspace() or c in ",=!()" for c in group):
        raise problems.invalid("group", "expected a label key such as region")
    return group


def worst(counts: dict[str, int]) -> str:
    for state in SEVERITY:
        if counts.get(state):
            return state
    return next(iter(counts), "")


def _shape(found: queries.Matrix, group: str) -> str:
    rows = found.groups if group else [t.name for t in found.targets]
    text = "\n".join([group, *rows, "", *(d.name for d in found.deployments)])
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


async def _context(request: web.Request) -> dict[str, Any]:
    text, selector = _selector(request)
    group = _group(request)
    page = params.integer(request, "page", 1)
    if page < 1:
        raise problems.invalid("page", f"must be at least 1, got {page}")
    await reads.wait_for_position(request)
    async with reads.connection(request) as conn:
        found = await queries.matrix(conn, selector, group=group, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    pages = max(1, -(-found.matched // PER_PAGE))
    row_counts: dict[str, dict[str, int]] = {}
    for (_, target), cell in found.cells.items():
        counts = row_counts.setdefault(target, {})
        counts[cell.state] = counts.get(cell.state, 0) + 1
    group_rows: dict[str, dict[str, int]] = {}
    for (_, value), counts in found.group_counts.items():
        total = group_rows.setdefault(value, {})
        for state, n in counts.items():
            total[state] = total.get(state, 0) + n
    return {"m": found, "selector": text, "group": group, "page": page, "pages": pages, "per_page": PER_PAGE,
            "row_counts": row_counts, "group_rows": group_rows, "worst": worst, "shape": _shape(found, group),
            "query": {k: v for k, v in (("selector", text), ("group", group)) if v}}


@routes.get("/fleet", name="ui.fleet")
async def fleet_page(request: web.Request) -> web.Response:
    return render.page(request, "fleet.html", await _context(request))


@routes.get("/fleet/matrix", name="ui.fleet_matrix")
async def matrix_fragment(request: web.Request) -> web.Response:
    return render.fragment(request, "matrix.html", await _context(request))
