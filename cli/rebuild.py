"""``ledger rebuild``: drop the read models and fold the whole log into them again.

Use it after restoring a database, after changing the fold, or to check that the read models are
exactly what the log says. It takes the projection lock, so it refuses to run beside a service
whose projector is live (stop it, or start it with ``--projector false``, first). Events stream
through a server-side cursor, so memory stays flat however long the log; a progress bar shows on
a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import tqdm

from cli import options
from ledger import db, migrate, pgembed
from projections import replay, runner


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("rebuild", help="drop the read models and rebuild them from the whole log")
    parser.add_argument("--until", type=int, default=None, help="stop at this log position (default: the head)")
    options.add_settings_flags(parser)
    parser.set_defaults(func=run)


async def _rebuild(dsn: str, until: int | None, show: bool) -> tuple[int, float]:
    conn = await db.connect(dsn)
    try:
        await migrate.migrate(conn)
        total = until if until is not None else await replay.head(conn)
    finally:
        await conn.close()
    with tqdm.tqdm(total=total, unit="ev", unit_scale=True, disable=not show, file=sys.stderr,
                   desc="rebuild") as bar:
        def advance(position: int) -> None:
            bar.update(position - bar.n)

        started = time.perf_counter()
        position = await runner.Projector(dsn, on_flush=advance).rebuild(until=until)
        return position, time.perf_counter() - started


def run(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    embedded = None
    dsn = settings.database_url
    if not dsn:
        # A server another process runs (the service) is used, and left running afterwards.
        dsn, embedded = pgembed.start_or_join(settings.data_dir)
    try:
        position, seconds = asyncio.run(_rebuild(dsn, args.until, sys.stderr.isatty()))
    except runner.ProjectorBusy as exc:
        print(f"ledger rebuild: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    rate = position / seconds if seconds > 0 else 0.0
    print(f"rebuilt the read models from {position} events in {seconds:.1f} s ({rate:,.0f} events/s)")
    return 0
