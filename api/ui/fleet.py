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

import datetime as dt
import hashlib
import time
from typing import Any, Final

from aiohttp import web
from markupsafe import Markup, escape

from api import keys, params, problems, reads
from api.ui import queries, render
from ledger import hashing
from projections import freezerules, freezes, loading, selectors
from projections import queries as projection_queries

routes = web.RouteTableDef()

PER_PAGE: Final = 100
CACHE: Final = web.AppKey("ui_fleet_cache", queries.Cache)
_LABEL_KEY_MAX: Final = 317
# The worst state first: a grouped cell takes the colour of the worst state in it.
SEVERITY: Final = ("failed", "degraded", "frozen", "paused", "applying", "progressing", "pending", "healthy")


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


def counts_html(counts: dict[str, int]) -> str:
    return "".join(f'<span class="n {render.state_class(state)}">{n} {escape(state)}</span>'
                   for state, n in sorted(counts.items()))


def rows_html(found: queries.Matrix, row_counts: dict[str, dict[str, int]]) -> list[Markup]:
    """The matrix's rows of targets, built here rather than in the template: a page has 5,000 cells
    (100 targets x 50 deployments), which a template loop renders ten times slower. Every value from
    the log is escaped; the output is exactly what templates/matrix.html documents."""
    columns = [d.name for d in found.deployments]
    plain: dict[str, str] = {}
    cells = found.cells
    rows = []
    for target in found.targets:
        name = escape(target.name)
        parts = [f'<tr data-t="{name}"><th scope="row"><a href="/targets/{name}">{name}</a>'
                 f'<div class="counts">{counts_html(row_counts.get(target.name, {}))}</div></th>']
        for column in columns:
            cell = cells.get((column, target.name))
            if cell is None:
                parts.append("<td></td>")
            elif cell.error:
                parts.append(f'<td class="{render.state_class(cell.state)}" title="{escape(cell.error)}">'
                             f"{escape(cell.state)}</td>")
            else:
                found_html = plain.get(cell.state)
                if found_html is None:
                    found_html = plain[cell.state] = (f'<td class="{render.state_class(cell.state)}">'
                                                      f"{escape(cell.state)}</td>")
                parts.append(found_html)
        parts.append("</tr>")
        rows.append(Markup("".join(parts)))
    return rows


async def _frozen(request: web.Request, found: queries.Matrix) -> dict[str, list[freezes.Cover]]:
    """The page's targets a freeze covers now; a cell whose revision the freeze holds
    (projections/freezerules.py ``shown_frozen``, as ``ledger status`` shows it) becomes ``frozen``."""
    table = await loading.freezes_now(request.app[keys.STORE], timeout=request.app[keys.SETTINGS].db_timeout)
    if not table:
        return {}
    now = dt.datetime.now(dt.UTC)
    held: dict[str, list[freezes.Cover]] = {}
    labels = {}
    for target in found.targets:
        covers = freezes.covering(table, target.labels, now)
        if covers:
            held[target.name] = covers
            labels[target.name] = target.labels
    waiting = {d for (d, name), cell in found.cells.items() if name in held and cell.state in freezerules.WAITING}
    if not waiting:
        return held
    async with reads.connection(request) as conn:
        overridden = await projection_queries.overridden(conn, sorted(waiting))
    for (deployment, name), cell in list(found.cells.items()):
        holding = freezerules.shown_frozen(
            table, labels.get(name, {}), now, state=cell.state, revision=cell.revision, applied_revision=None,
            overridden=(deployment, cell.revision) in overridden) if name in held else None
        if holding is not None:
            until = hashing.format_time(holding.until)
            found.cells[deployment, name] = queries.Cell(
                "frozen", cell.revision, f"held by freeze {', '.join(holding.freezes)} until {until}")
    return held


def _shape(found: queries.Matrix, group: str) -> str:
    rows = found.groups if group else [t.name for t in found.targets]
    text = "\n".join([group, *rows, "", *(d.name for d in found.deployments)])
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


class Timing:
    """Where a request's time went, sent as ``Server-Timing`` (bench/ui.py reads it)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.parts: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts.append((name, (now - self.last) * 1000))
        self.last = now

    def header(self) -> str:
        total = (time.perf_counter() - self.start) * 1000
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in [*self.parts, ("total", total)])


async def _context(request: web.Request, timing: Timing) -> dict[str, Any]:
    text, selector = _selector(request)
    group = _group(request)
    page = params.integer(request, "page", 1)
    if page < 1:
        raise problems.invalid("page", f"must be at least 1, got {page}")
    await reads.wait_for_position(request)
    timing.lap("wait")
    async with reads.connection(request) as conn:
        found = await queries.matrix(conn, selector, group=group, offset=(page - 1) * PER_PAGE, limit=PER_PAGE,
                                     cache=request.app[CACHE])
    held = await _frozen(request, found) if not group else {}
    timing.lap("db")
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
    rows = rows_html(found, row_counts) if not group else []
    return {"m": found, "held": held, "selector": text, "group": group, "page": page, "pages": pages, "per_page": PER_PAGE,
            "rows": rows, "group_rows": group_rows, "worst": worst, "shape": _shape(found, group),
            "query": {k: v for k, v in (("selector", text), ("group", group)) if v}}


async def _answer(request: web.Request, template: str) -> web.Response:
    timing = Timing()
    context = await _context(request, timing)
    response = render.page(request, template, context)
    timing.lap("render")
    response.headers["Server-Timing"] = timing.header()
    return response


@routes.get("/fleet", name="ui.fleet")
async def fleet_page(request: web.Request) -> web.Response:
    return await _answer(request, "fleet.html")


@routes.get("/fleet/matrix", name="ui.fleet_matrix")
async def matrix_fragment(request: web.Request) -> web.Response:
    return await _answer(request, "matrix.html")
