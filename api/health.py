"""Liveness and readiness.

``/healthz``: the process serves HTTP. ``/readyz``: every component in the registry
(ledger/components.py) is up — the database as its probe last found it (ledger/probe.py), the
LISTEN connection, every supervised task, the projector (not stalled), the embedded PostgreSQL,
the applier's targets — else 503 with Retry-After and, per component that is not up, what it is
doing and why. It reads memory only, never the database, so it answers at once whatever the
database does (a Kubernetes probe gives up after 1 s).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import bodies, keys
from ledger import probe

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return bodies.json_response({"status": "ok"})


def not_ready(app: web.Application) -> dict[str, dict[str, Any]]:
    """Every component that is not up, by name, with what it is doing and why."""
    registry = app[keys.COMPONENTS]
    found = registry.not_ready()
    if registry.get(probe.NAME) is None:
        found[probe.NAME] = {"status": "down", "reason": "not probed yet"}
    store = app.get(keys.STORE)
    if store is not None and not store.notifier.connected.is_set():
        found["notifier"] = {"status": "restarting", "reason": "the LISTEN connection is reconnecting"}
    return found


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    down = not_ready(request.app)
    checks = {name: "ok" if name not in down else str(down[name].get("reason", down[name]["status"]))
              for name in (probe.NAME, "notifier")}
    body = {"status": "not ready" if down else "ready", "checks": checks, "not_ready": down}
    return bodies.json_response(body, status=503 if down else 200,
                                headers={"Retry-After": str(request.app[keys.SETTINGS].retry_after)}
                                if down else None)
