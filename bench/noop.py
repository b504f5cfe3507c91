"""The raw baseline for HTTP appends: an aiohttp handler that parses the JSON body and answers."""

from __future__ import annotations

import asyncio
import gc
import sys

import uvloop
from aiohttp import web


async def noop(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"ok": True}, status=201)


def main() -> None:
    # The same runtime as `ledger serve`: uvloop and the same garbage-collector settings.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/v1/streams/{stream}/events", noop)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
