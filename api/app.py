"""The aiohttp application: routes, the problem+json middleware and the cleanup contexts."""

from __future__ import annotations

from aiohttp import web

from api import (
    access,
    auth,
    feed,
    health,
    keys,
    lanes,
    lifecycle,
    live,
    metrics,
    openapi,
    problems,
    reference,
    streams,
    ui,
    waiting,
)
from api import deployments as deployments_api
from api import freezes as freezes_api
from api import history as history_api
from api import rollouts as rollouts_api
from api import state as state_api
from api import targets as targets_api
from api import tokens as tokens_api
from api import verify as verify_api
from ledger import components
from ledger import settings as settings_mod


def make_app(settings: settings_mod.Settings, *, access_control: bool = True) -> web.Application:
    """The service. ``access_control=False`` exists for bench/append.py alone, to measure what
    authentication costs; no setting, flag or variable reaches it."""
    access_log = access.Log(auth.actor)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[problems.middleware(settings.retry_after, auth.authorize if access_control else None,
                                         access_log)],
    )
    app[keys.SETTINGS] = settings
    app[access.LOG] = access_log
    app[keys.COMPONENTS] = components.Registry()
    lifecycle.load_credentials(app)
    app.cleanup_ctx.extend([lifecycle.database, lifecycle.event_store, lifecycle.target_index, lanes.context])
    if access_control:
        app.cleanup_ctx.append(auth.context)
    app.cleanup_ctx.append(lifecycle.credentials)
    app.add_routes(health.routes)
    metrics.install(app)
    app.add_routes(streams.routes)
    app.cleanup_ctx.append(live.tail_context)
    app.on_shutdown.append(live.close_streams)
    waiting.install(app)
    app.add_routes(feed.routes)
    app.add_routes(live.routes)
    app.add_routes(verify_api.routes)
    app.cleanup_ctx.append(lifecycle.projection)
    app.add_routes(targets_api.routes)
    app.add_routes(deployments_api.routes)
    app.add_routes(rollouts_api.routes)
    app.add_routes(history_api.routes)
    app.add_routes(state_api.routes)
    app.add_routes(tokens_api.routes)
    app.add_routes(freezes_api.routes)
    app.cleanup_ctx.append(lifecycle.applier)
    openapi.install(app)
    app.add_routes(reference.routes)
    ui.install(app)
    if access_control:
        auth.install(app)
    return app
