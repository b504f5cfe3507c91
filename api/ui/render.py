"""Rendering pages: one Jinja2 environment (aiohttp-jinja2) over the templates in the package, the
headers every page carries, and the HTML error page.

Decisions:

- **Autoescaping on, undefined names are errors** (``StrictUndefined``): a value from the log can
  never become markup, and a template that names a missing value fails its test instead of
  rendering an empty cell.
- **Content-Security-Policy** allows this origin's scripts, styles, images and fetches only; no
  inline script or style anywhere (templates carry data in ``data-`` attributes), forms post to
  this origin only, and no other site may frame a page.
- Every page is compressed when the browser accepts it (the fleet matrix is a large table of
  repeated words) and never cached, since it shows the log as it is now.
- **What a role may not use is not offered**: templates ask ``can("deploy")`` (api/policy.py's
  roles, and for a scoped token its deployment globs) before they show a control.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from api import auth, policy, problems
from api.ui import sessions
from ledger import events, hashing, streams

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
              "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "same-origin", "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
# The streams whose events can change a cell of the fleet (those that exist in this version).
FLEET_CATEGORIES: Final = frozenset({"target", "deployment", "rollout", "freeze"})
# The per-target rollout states (projections/fleet.py), and ``frozen`` for a target a freeze window
# covers; each has a colour in app.css. A word not listed here still shows, in grey.
STATES: Final = ("healthy", "progressing", "applying", "pending", "degraded", "failed", "paused", "frozen")
# The words of a rollout in waves and of each wave (projections/waves.py ``view``), each coloured too.
ROLLOUT_WORDS: Final = ("rolling", "completed", "halted", "awaiting-approval")


def _when(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return hashing.format_time(value)


def state_class(state: str | None) -> str:
    return f"s-{state}" if state in STATES or state in ROLLOUT_WORDS else "s-other"


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("api.ui", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["state_class"] = state_class
    env.globals["STATES"] = STATES


def may(request: web.Request, permission: policy.Permission, deployment: str | None = None) -> bool:
    """Whether the signed-in token may use a control that needs ``permission`` (on ``deployment``)."""
    token = request.get(auth.PRINCIPAL)
    if token is None or not policy.allows(token.role, permission):
        return False
    globs = token.scope.deployments
    return deployment is None or not globs or any(fnmatch.fnmatchcase(deployment, g) for g in globs)


def page(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200,
         headers: Mapping[str, str] | None = None) -> web.Response:
    token = request.get(auth.PRINCIPAL)
    base = {
        "principal": token,
        "csrf": sessions.csrf_token(request) or "",
        "csrf_field": sessions.CSRF_FIELD,
        "can": lambda permission, deployment=None: may(request, permission, deployment),
        "path": request.path,
        "event_types": sorted(events.TYPES),
        "fleet_categories": sorted(FLEET_CATEGORIES & streams.CATEGORIES),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.headers.update(HEADERS)
    if headers:
        response.headers.update(headers)
    response.enable_compression()
    return response


def fragment(request: web.Request, template: str, context: Mapping[str, Any]) -> web.Response:
    return page(request, template, context)


def problem_page(request: web.Request, problem: problems.Problem) -> web.Response:
    """problems.PAGES: a problem as an HTML page, same status and headers."""
    return page(request, "error.html", {"problem": problem}, status=problem.status, headers=problem.headers)
