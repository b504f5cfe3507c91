"""``GET /api``: the browsable API reference, a page that renders /openapi.json in the browser.

The page, its script and its style sheet ship inside the package (api/assets/, written for this
service: no CDN, no build step, a few KB), so the reference works offline. They are public: they
hold no information about the API, and the script asks for a token before it fetches the document,
which needs one like every operation. Assets are served from a fixed table read at import, so no
part of a URL ever becomes a file path. A strict Content-Security-Policy allows this origin's
script, style and fetches only.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from aiohttp import web

from api import problems

routes = web.RouteTableDef()

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_MEDIA: Final = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_FILES: Final = ("reference.html", "reference.js", "reference.css")
ASSETS: Final[dict[str, tuple[bytes, str]]] = {
    name: (resources.files("api.assets").joinpath(name).read_bytes(), _MEDIA[name[name.rindex("."):]])
    for name in _FILES
}
_HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "no-cache"}


def _answer(name: str) -> web.Response:
    body, media = ASSETS[name]
    return web.Response(body=body, content_type=media, charset="utf-8", headers=_HEADERS)


@routes.get("/api")
async def page(_request: web.Request) -> web.Response:
    return _answer("reference.html")


@routes.get("/api/assets/{asset}")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS or name == "reference.html":
        raise problems.Problem(404, "Not found", f"no asset {name[:64]!r}; the reference's assets are "
                               + ", ".join(n for n in _FILES if n != "reference.html"))
    return _answer(name)
