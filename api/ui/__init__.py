"""The web UI at ``/``: server-rendered pages over the same read models and log queries the API
uses, with a little JavaScript for live updates from ``/v1/feed/live``.

Pages are ``page`` rows of the policy table (api/policy.py): deny by default like every route,
signed in with a token through a session cookie (api/ui/sessions.py), answered in HTML even when
they fail (api/ui/render.py), and left out of /openapi.json. Templates and assets ship inside this
package (api/ui/templates, api/ui/static): no CDN, no build step. docs/ui.md describes the pages.
"""

from __future__ import annotations

from aiohttp import web

from api import auth, problems
from api.ui import assets, audit, deployment, fleet, queries, render, sessions, signin, target, timeline


def install(app: web.Application) -> None:
    """Mount the UI's routes and hooks on ``app`` (api/app.py calls it before ``auth.install``)."""
    render.setup(app)
    app[sessions.STORE] = sessions.Store()
    app.cleanup_ctx.append(sessions.context)
    app.on_response_prepare.append(sessions.renew)
    app[fleet.CACHE] = queries.Cache()
    app[auth.SESSIONS] = sessions.lookup
    app[problems.PAGES] = render.problem_page
    for module in (signin, assets, fleet, deployment, target, timeline, audit):
        app.add_routes(module.routes)
