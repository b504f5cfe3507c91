"""Signing in and out of the web UI, and ``/`` (the fleet).

Sign-in takes a token (an admin's first one is in ``<data dir>/admin.token``), checks it exactly as
a bearer token is checked (projections/tokens.py), and opens a session (api/ui/sessions.py). A bad
token is refused with 401 and the reason (unknown, expired, revoked), and nothing is remembered.
Where to go afterwards (``next``) must be a path of this site, never another host.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from api import auth, keys
from api.ui import render, sessions
from projections import tokens

routes = web.RouteTableDef()
HOME: Final = "/fleet"


def _next(raw: str | None) -> str:
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw or "\n" in raw or "\r" in raw:
        return HOME
    return raw


@routes.get("/", name="ui.home")
async def home(_request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(HOME)


@routes.get(auth.SIGN_IN, name="ui.signin")
async def form(request: web.Request) -> web.Response:
    signed_in = sessions.lookup(request)
    return render.page(request, "signin.html", {"next": _next(request.query.get("next")), "refused": None,
                                                "signed_in": signed_in})


@routes.post(auth.SIGN_IN, name="ui.signin_post")
async def sign_in(request: web.Request) -> web.Response:
    sessions.same_origin(request)
    form = await request.post()
    secret = str(form.get("token", "")).strip()
    wanted = _next(str(form.get("next", "")) or None)
    try:
        token = tokens.check(request.app[keys.TOKENS], f"Bearer {secret}" if secret else None, time.time())
    except tokens.Refused as exc:
        return render.page(request, "signin.html", {"next": wanted, "refused": str(exc), "signed_in": None},
                           status=401)
    response = web.HTTPSeeOther(wanted)
    await sessions.sign_in(request, response, token)
    raise response


@routes.post("/signout", name="ui.signout")
async def sign_out(request: web.Request) -> web.Response:
    form = await request.post()
    sessions.check_form(request, {k: str(v) for k, v in form.items()})
    response = web.HTTPSeeOther(auth.SIGN_IN)
    await sessions.sign_out(request, response)
    raise response
