"""Liveness and readiness.

``/healthz``: the process serves HTTP. ``/readyz``: every component in the registry
(ledger/components.py) is up — every supervised task, the projector (not stalled), the embedded
PostgreSQL, the applier's targets, the LISTEN connection — and the database answers its probe
(ledger/probe.py: ``SELECT 1`` on a connection of its own, never the pool) within
``PROBE_BUDGET``; else 503 with Retry-After and, per component that is not up, what it is doing
and why. Whatever the database does (stopped, frozen), the answer comes within 1 s, a Kubernetes
probe's default timeout. In a multi-process ``ledger serve`` the API process also asks the
supervisor, the projector's and the applier's processes (api/peers.py) and names what is not up
there, with the process it is in.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from api import bodies, keys, peers
from ledger import probe

PROBE_BUDGET: Final = 0.5

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return bodies.json_response({"status": "ok"})


async def not_ready(app: web.Application) -> dict[str, dict[str, Any]]:
    """Every component that is not up, by name, with what it is doing and why."""
    found = app[keys.COMPONENTS].not_ready()
    # The other processes are asked meanwhile: both waits together stay within a probe's 1 s.
    elsewhere = asyncio.ensure_future(peers.not_ready(app))
    database = app.get(keys.PROBE)
    if database is not None:
        why = await database.answer(PROBE_BUDGET)
        if why is None:
            found.pop(probe.NAME, None)
        else:
            found[probe.NAME] = {"status": "down", "reason": why}
    store = app.get(keys.STORE)
    if store is not None and not store.notifier.connected.is_set():
        found["notifier"] = {"status": "restarting", "reason": "the LISTEN connection is reconnecting"}
    for name, entry in (await elsewhere).items():
        found[name if name not in found else f"{name}@{entry['process']}"] = entry
    return found


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    down = await not_ready(request.app)
    checks = {name: "ok" if name not in down else str(down[name].get("reason", down[name]["status"]))
              for name in (probe.NAME, "notifier")}
    body = {"status": "not ready" if down else "ready", "checks": checks, "not_ready": down}
    return bodies.json_response(body, status=503 if down else 200,
                                headers={"Retry-After": str(request.app[keys.SETTINGS].retry_after)}
                                if down else None)
