"""``GET /ui/assets/{asset}``: the UI's style sheet and scripts, shipped inside the package.

Served from a fixed table read at import (no part of a URL ever becomes a file path), public like
the API reference's assets (they hold nothing about the fleet), cached by the browser for an hour.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from aiohttp import web

from api import problems
from api.ui import render

routes = web.RouteTableDef()

_MEDIA: Final = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
FILES: Final = tuple(sorted(
    entry.name for entry in resources.files("api.ui.static").iterdir()
    if entry.name[entry.name.rfind("."):] in _MEDIA))
ASSETS: Final[dict[str, tuple[bytes, str]]] = {
    name: (resources.files("api.ui.static").joinpath(name).read_bytes(), _MEDIA[name[name.rindex("."):]])
    for name in FILES
}
_HEADERS: Final = {"Content-Security-Policy": render.CSP, "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "public, max-age=3600"}


@routes.get("/ui/assets/{asset}", name="ui.asset")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise problems.Problem(404, "Not found", f"no asset {name[:64]!r}")
    body, media = ASSETS[name]
    response = web.Response(body=body, content_type=media, charset="utf-8", headers=_HEADERS)
    response.enable_compression()
    return response
