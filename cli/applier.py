"""``ledger applier``: the applier alone, without the HTTP API, for scaling appliers out.

It runs the same cleanup contexts as ``ledger serve`` for the event store and the applier, so the
two cannot drift apart; several such processes, and ``ledger serve`` processes with the applier
on, share the targets through handlers.claims. With ``--http-port`` other than 0 it answers
``GET /healthz`` (alive) and ``GET /readyz`` (caught up and claiming, and every component up, as
api/health.py judges it) for orchestrators, and ``GET /metrics`` (this process's applier metrics)
when ``LEDGER_METRICS_PUBLIC`` is true, as the port checks no token; SIGTERM or SIGINT stops it
cleanly (claims released, checkpoint saved). It runs on uvloop, as ``ledger serve`` does. Like
cli/serve.py, it imports the service's modules when it runs, not when the parser is built.

The database: ``LEDGER_DATABASE_URL`` in production. Without it the embedded PostgreSQL under the
data directory is used — adopted if ``ledger serve`` already runs it, and then left running at
exit (only a server this process started is stopped), so an applier next to a local service does
not take the service's database down with it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import TYPE_CHECKING

from cli import listen, options, parsers, signals
from ledger import settings as settings_mod

if TYPE_CHECKING:
    from aiohttp import web


def register(sub: parsers.Subparsers) -> None:
    cmd = parsers.command(
        sub, "applier", summary="run only the applier (scale-out; shares targets with others)",
        description="Run only the applier, without the HTTP API: several processes share the targets.\n"
                    "With --http-port other than 0 it answers /healthz and /readyz. Every flag is also a\n"
                    "LEDGER_<NAME> environment variable.",
        example_lines=["LEDGER_DATABASE_URL=postgresql://ledger@db/ledger ledger applier --http-port 9090"])
    options.add_settings_flags(cmd)
    cmd.set_defaults(func=run_applier)


def make_app(settings: settings_mod.Settings) -> web.Application:
    from aiohttp import web

    from api import health, keys, lifecycle, metrics
    from ledger import components

    app = web.Application()
    app[keys.SETTINGS] = settings.replace(applier=True, projector=False)
    app[keys.COMPONENTS] = components.Registry()
    lifecycle.load_credentials(app)
    app.cleanup_ctx.extend([lifecycle.database_context(stop_adopted=False), lifecycle.event_store,
                           lifecycle.credentials, lifecycle.applier])

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        status = request.app[keys.APPLIER].status()
        down = await health.not_ready(request.app)
        ready = status["ready"] and not down
        return web.json_response({**status, "ready": ready, "not_ready": down}, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.metrics_public:
        metrics.install(app)  # no tokens here: only when the operator made metrics public
    return app


async def serve(settings: settings_mod.Settings, sock: socket.socket | None) -> list[str]:
    """Run until SIGINT or SIGTERM; what made the process stop itself, if anything (keys.FATAL)."""
    from aiohttp import web

    from api import keys

    app = make_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        if sock is not None:
            site = web.SockSite(runner, sock)
            await site.start()
            print(f"Deployment Ledger applier on {listen.url(sock)}", flush=True)
        await signals.until_stopped()
    finally:
        await runner.cleanup()
    return app.get(keys.FATAL, [])


def run_applier(args: argparse.Namespace) -> int:
    import uvloop

    settings = options.settings_from(args)
    options.configure_logging(settings)
    sock = listen.bind(settings.http_host, settings.http_port) if settings.http_port else None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        fatal = runner.run(serve(settings, sock))
    for message in fatal:
        print(f"ledger applier: {message}", file=sys.stderr, flush=True)
        return 1
    return 0
