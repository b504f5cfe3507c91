"""Liveness and readiness. Ready means: the database answers and the notifier is listening."""

from __future__ import annotations

import asyncio

from aiohttp import web

from api import bodies, keys

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return bodies.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with store.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["notifier"] = "ok" if store.notifier.connected.is_set() else "reconnecting"
    ready = all(v == "ok" for v in checks.values())
    return bodies.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                                status=200 if ready else 503,
                                headers=None if ready else {"Retry-After": "2"})
