"""Freeze windows over HTTP: ``PUT /v1/freezes/{name}`` sets one (admin), ``DELETE`` removes it
(admin), ``GET /v1/freezes`` lists them with whether each holds now (viewers and up).

Setting and removing are events in ``freeze-<name>``, a stream only the ledger writes (clients cannot
append to it), decided by projections/freezerules.py through the one write path (api/submission.py:
idempotency keys, expected versions and the problem+json of refusals, as for targets). The schedule
is validated at the door (projections/freezes.py): 422 naming the field. A PUT that changes nothing
records nothing (200, ``changed: false``). The list is folded from the log at each request (freezes
are few), so it is never behind a write. What a freeze does: docs/freezes.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from aiohttp import web

from api import bodies, envelope, keys, reads, submission
from ledger import events, hashing
from ledger import streams as stream_names
from projections import freezerules, freezes, loading, selectors

routes = web.RouteTableDef()


class FreezeBody(msgspec.Struct, forbid_unknown_fields=True):
    schedule: events.FreezeSchedule
    reason: str = ""
    selector: str = ""
    expected_version: envelope.ExpectedVersion | None = None


class RemoveBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""
    expected_version: envelope.ExpectedVersion | None = None


@routes.put("/v1/freezes/{name}")
async def put_freeze(request: web.Request) -> web.Response:
    name = reads.name_param(request, "freeze name")
    body = await bodies.read_json(request, FreezeBody)
    if body.selector:
        try:
            selectors.parse(body.selector, field="selector")
        except selectors.SelectorError as exc:
            raise submission.problem_for(exc) from exc

    existed = True

    async def decide(state: loading.StreamState) -> Any:
        nonlocal existed
        current = state.state.freezes.get(name)
        existed = current is not None and not current.removed
        return freezerules.set_freeze(current, name, body.selector, body.reason, body.schedule,
                                      dt.datetime.now(dt.UTC))

    written = await submission.run(request, stream_names.name("freeze", name), body.expected_version, decide)
    return written.response("freeze", name, 201 if written.changed and not existed and not written.replayed else 200)


@routes.delete("/v1/freezes/{name}")
async def remove_freeze(request: web.Request) -> web.Response:
    name = reads.name_param(request, "freeze name")
    body = await submission.optional_json(request, RemoveBody)
    reason = body.reason or bodies.query_text(request, "reason", "") or ""

    async def decide(state: loading.StreamState) -> Any:
        return freezerules.remove_freeze(state.state.freezes.get(name), name, reason)

    written = await submission.run(request, stream_names.name("freeze", name), body.expected_version, decide)
    return written.response("freeze", name, 200)


@routes.get("/v1/freezes")
async def list_freezes(request: web.Request) -> web.Response:
    include_removed = reads.flag(request, "include_removed")
    store = request.app[keys.STORE]
    timeout = request.app[keys.SETTINGS].db_timeout
    table = await loading.freezes_now(store, timeout=timeout)
    targets = await loading.targets(store, request.app[keys.TARGETS], timeout=timeout) if table else {}
    live = {n: t for n, t in targets.items() if not t.retired}
    now = dt.datetime.now(dt.UTC)
    listed = [freezes.view(f, now, [n for n, t in live.items() if freezes.selects(f, t.labels)])
              for _, f in sorted(table.items()) if include_removed or not f.removed]
    return bodies.json_response({"now": hashing.format_time(now), "freezes": listed})
