"""``ledger serve``: the API, the projector and the applier, as supervised processes by default
(cli/supervisor.py) or on one event loop (``--processes single``); ``ledger db migrate``.

The service's own modules (aiohttp, the API, the applier's Kubernetes client) are imported when a
command here runs, not when the parser is built, so a client command such as ``ledger status``
starts without loading them (cli/main.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import socket
import ssl
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from cli import listen, options, parsers
from ledger import settings as settings_mod

if TYPE_CHECKING:
    from aiohttp import web


def register(sub: parsers.Subparsers) -> None:
    serve = parsers.command(
        sub, "serve", summary="run the service (embedded PostgreSQL unless LEDGER_DATABASE_URL)",
        description="Run the service: the HTTP API, the projector and the applier, each in a supervised process\n"
                    "of its own (--processes single: all in one). Without LEDGER_DATABASE_URL it keeps a\n"
                    "private PostgreSQL under the data directory.\n"
                    "Every flag is also a LEDGER_<NAME> environment variable; a flag wins.",
        example_lines=["ledger serve", "ledger serve --http-port 9000 --data-dir /var/lib/ledger",
                       "ledger serve --http-host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem "
                       "--credentials /etc/ledger/credentials.yaml",
                       "LEDGER_DATABASE_URL=postgresql://ledger@db/ledger ledger serve --applier false"])
    options.add_settings_flags(serve)
    serve.set_defaults(func=run_serve)

    db = parsers.command(
        sub, "db", summary="database administration",
        description="Administer the ledger's database.", example_lines=["ledger db migrate"])
    dbsub = parsers.subcommands(db, "db_command")
    mig = parsers.command(
        dbsub, "migrate", summary="apply pending migrations and exit",
        description="Apply the pending migrations (sql/) and exit; 'ledger serve' also does at start.",
        example_lines=["ledger db migrate", "ledger db migrate --database-url postgresql://ledger@db/ledger"])
    options.add_settings_flags(mig, options.DATABASE)
    mig.set_defaults(func=run_migrate)


def tls_context(settings: settings_mod.Settings) -> ssl.SSLContext | None:
    """The server's TLS context when ``tls_cert`` and ``tls_key`` are set (TLS 1.2 or later)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except FileNotFoundError as exc:
        raise settings_mod.SettingsError(f"settings tls_cert/tls_key: {exc.filename or 'a file'} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise settings_mod.SettingsError(
            f"settings tls_cert ({settings.tls_cert}) and tls_key ({settings.tls_key}) cannot be used: "
            f"{getattr(exc, 'reason', None) or exc}") from None
    return context


def run_serve(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    options.configure_logging(settings)
    tls = tls_context(settings)
    sock = listen.bind(settings.http_host, settings.http_port)
    if settings.processes == "multi":
        from cli import supervisor

        return supervisor.run(settings, sock)
    from api import app as app_mod

    return run(app_mod.make_app(settings), settings, tls, sock=sock)


def run(app: web.Application, settings: settings_mod.Settings, tls: ssl.SSLContext | None = None, *,
        sock: socket.socket | None = None) -> int:
    """Serve ``app`` until SIGINT or SIGTERM, on the runtime every ``ledger serve`` uses (HTTPS when
    ``tls`` is given); the exit code: 1 when the service stopped itself (``keys.FATAL`` says why).
    The port is bound before anything starts (cli/listen.py; ``sock``: already bound), so a port in
    use stops it at once."""
    import uvloop

    from api import keys, server

    if sock is None:
        sock = listen.bind(settings.http_host, settings.http_port)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Fewer, cheaper collections: start-up objects (modules, routes, settings) move out of the
    # collector's view, and young generations fill up more before being scanned. Under load the
    # default thresholds put full collections in the request path (a p99 of ~50 ms against ~10 ms).
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    server.raise_fd_limit()

    async def serve() -> None:
        async with server.serving(app, sock, tls=tls, handle_signals=True, access_log=None) as site:
            print(f"======== Deployment Ledger on {site.name} ========\n(Press CTRL+C to quit)", flush=True)
            await asyncio.Event().wait()

    _run_until_signalled(serve())
    for message in app.get(keys.FATAL, []):
        print(f"ledger serve: {message}", file=sys.stderr, flush=True)
        return 1
    return 0


def _run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on a new loop until SIGINT or SIGTERM (aiohttp's GracefulExit), then cancel it so
    that the app's cleanup contexts run, as ``web.run_app`` does."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from api import lanes

    lanes.share_the_interpreter(loop)
    task = loop.create_task(main)
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(task)
        finally:
            rest = asyncio.all_tasks(loop)
            for leftover in rest:
                leftover.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def run_migrate(args: argparse.Namespace) -> int:
    from cli import database

    settings = options.settings_from(args)

    async def go() -> list[str]:
        # Beside a running service, its embedded server is used and left running.
        async with database.service_database(settings) as conn:
            return await database.migrate_to_head(conn)

    applied = asyncio.run(go())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0
