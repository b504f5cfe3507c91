"""``ledger rebuild``: drop the read models and fold the whole log into them again.

Use it after restoring a database, after changing the fold, or to check that the read models are
exactly what the log says. It takes the projection lock, so it refuses to run beside a service
whose projector is live (stop it, or start it with ``--projector false``, first). Events stream
through a server-side cursor, so memory stays flat however long the log; a progress bar shows on
a terminal. The projector is imported when the command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from cli import exits, options, parsers
from ledger import pgembed


def register(sub: parsers.Subparsers) -> None:
    parser = parsers.command(
        sub, "rebuild", summary="drop the read models and rebuild them from the whole log",
        description="Drop the read models and fold the whole log into them again. Refuses to run beside\n"
                    "a live projector. The database: --database-url, else LEDGER_DATABASE_URL, else the\n"
                    "embedded one under an existing --data-dir.",
        example_lines=["ledger rebuild", "ledger rebuild --database-url postgresql://ledger@db/ledger",
                       "ledger rebuild --until 120000"])
    parser.add_argument("--until", type=int, default=None, help="stop at this log position (default: the head)")
    options.add_settings_flags(parser, options.DATABASE)
    parser.set_defaults(func=run)


async def _rebuild(dsn: str, until: int | None, show: bool) -> tuple[int, float]:
    import tqdm

    from ledger import db, migrate
    from projections import replay, runner

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
    import asyncpg

    from ledger import errors
    from projections import runner

    settings = options.settings_from(args)
    embedded = None
    dsn = settings.database_url
    if not dsn:
        # A server another process runs (the service) is used, and left running afterwards.
        options.require_dir(settings.data_dir)
        dsn, embedded = pgembed.start_or_join(settings.data_dir)
    try:
        position, seconds = asyncio.run(_rebuild(dsn, args.until, sys.stderr.isatty()))
    except runner.ProjectorBusy as exc:
        raise exits.Failure(exits.Code.FAILED, f"rebuild: {exc}") from exc
    except (errors.StoreUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise exits.Failure(exits.Code.UNREACHABLE, f"rebuild: cannot use the database: "
                            f"{type(exc).__name__}: {exc}") from exc
    finally:
        if embedded is not None:
            embedded.stop()
    rate = position / seconds if seconds > 0 else 0.0
    print(f"rebuilt the read models from {position} events in {seconds:.1f} s ({rate:,.0f} events/s)")
    return 0
