"""The aiohttp application: routes, the problem+json middleware and the cleanup contexts."""

from __future__ import annotations

from aiohttp import web

from api import health, keys, lifecycle, problems, streams
from ledger import settings as settings_mod


def make_app(settings: settings_mod.Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[problems.middleware(settings.retry_after)],
    )
    app[keys.SETTINGS] = settings
    app.cleanup_ctx.extend([lifecycle.database, lifecycle.event_store])
    app.add_routes(health.routes)
    app.add_routes(streams.routes)
    return app
