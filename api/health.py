"""Liveness and readiness. Ready means: the database answers and the notifier is listening."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from api import bodies, keys
from ledger import errors

# Within a probe's default 1 s timeout, whatever the database does (one timeout, no retry).
PROBE_TIMEOUT: Final = 0.5

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return bodies.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    checks: dict[str, str] = {}
    try:
        await store.ping(PROBE_TIMEOUT)
        checks["database"] = "ok"
    except errors.StoreUnavailable as exc:
        checks["database"] = f"unavailable: {type(exc.__cause__ or exc).__name__}"
    checks["notifier"] = "ok" if store.notifier.connected.is_set() else "reconnecting"
    ready = all(v == "ok" for v in checks.values())
    return bodies.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                                status=200 if ready else 503,
                                headers=None if ready else {"Retry-After": "2"})
