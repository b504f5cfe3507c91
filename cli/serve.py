"""``ledger serve``: API, projector and applier in one process; ``ledger db migrate``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

import uvloop
from aiohttp import web

from api import app as app_mod
from cli import database, listen, options, parsers
from ledger import settings as settings_mod


def register(sub: parsers.Subparsers) -> None:
    serve = parsers.command(
        sub, "serve", summary="run the service (embedded PostgreSQL unless LEDGER_DATABASE_URL)",
        description="Run the service: the HTTP API, the projector and the applier in one process. Without\n"
                    "LEDGER_DATABASE_URL it keeps a private PostgreSQL under the data directory.\n"
                    "Every flag is also a LEDGER_<NAME> environment variable; a flag wins.",
        example_lines=["ledger serve", "ledger serve --http-port 9000 --data-dir /var/lib/ledger",
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


def run_serve(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(app_mod.make_app(settings), settings)
    return 0


def run(app: web.Application, settings: settings_mod.Settings) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, on the runtime every ``ledger serve`` uses. The port is
    bound first (cli/listen.py), so a port in use stops it before anything starts."""
    sock = listen.bind(settings.http_host, settings.http_port)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Fewer, cheaper collections: start-up objects (modules, routes, settings) move out of the
    # collector's view, and young generations fill up more before being scanned. Under load the
    # default thresholds put full collections in the request path (a p99 of ~50 ms against ~10 ms).
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    web.run_app(app, sock=sock,
                print=lambda msg: print(msg.replace("Running on", "Deployment Ledger on"), flush=True),
                access_log=None)


def run_migrate(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)

    async def go() -> list[str]:
        # Beside a running service, its embedded server is used and left running.
        async with database.service_database(settings) as conn:
            return await database.migrate_to_head(conn)

    applied = asyncio.run(go())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0
