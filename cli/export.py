"""``ledger export`` and ``ledger import``: the log as a file, and a file back into a ledger.

Export talks to a running service through the HTTP feed by default (``--url``, or LEDGER_URL,
default http://127.0.0.1:8080), so exporting needs no database access and goes through the same
interface other tools use. With ``--database-url`` (or ``--data-dir`` of an existing ledger) it
reads the database directly through a server-side cursor instead (cli/database.py). Both write the same bytes. Formats, one event per line:

- ``ndjson`` (default): the ledger's own format, every column including metadata, position and
  hashes; it is what ``ledger import`` restores and what an independent verifier reads
  (docs/export.md);
- ``cloudevents``: one CloudEvents 1.0 JSON event per line, as /v1/feed serves them.

Import reads the database directly (it must: it restores rows the writer could not produce) into
an EMPTY ledger, checking the chain as it goes and refusing the whole file at the first bad line
(ledger/importer.py). A progress bar is drawn only when stderr is a terminal. The feed, the driver
and aiohttp are imported when a command here runs, not when the parser is built (cli/main.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cli import aio, exits, http, options, parsers
from ledger import settings as settings_mod

if TYPE_CHECKING:
    import aiohttp
    import asyncpg

    from ledger import importer, records



def register(sub: parsers.Subparsers) -> None:
    out = parsers.command(
        sub, "export", summary="write the log as one event per line (ndjson or CloudEvents)",
        description="Write the log, one event per line: ndjson (every column, with hashes; what 'ledger\n"
                    "import' restores) or CloudEvents. Reads the service's feed, or a database directly.",
        example_lines=["ledger export -o ledger.ndjson",
                       "ledger export --after 5000 --until 9000 -o part.ndjson",
                       "ledger export --format cloudevents | gzip > events.jsonl.gz",
                       "ledger export --database-url postgresql://ledger@db/ledger -o ledger.ndjson"])
    out.add_argument("--after", type=int, default=0, help="start after this position")
    out.add_argument("--until", type=int, default=None, help="stop at this position (default: the head)")
    out.add_argument("--format", choices=("ndjson", "cloudevents"), default="ndjson", help="one event per line as")
    out.add_argument("-o", "--output", type=Path, default=None, help="write to FILE (default: stdout)")
    source = out.add_argument_group("where the log is (one of; default: the service)")
    exclusive = source.add_mutually_exclusive_group()
    options.add_url_flag(exclusive)
    options.add_database_flags(exclusive)
    options.add_token_flag(source)
    out.set_defaults(func=run_export)

    into = parsers.command(
        sub, "import", summary="restore an ndjson export into an empty ledger database",
        description="Restore an ndjson export into an EMPTY ledger database, checking every line's\n"
                    "position and hash first; the first bad line is named and nothing is written.\n"
                    "The database: --database-url, else LEDGER_DATABASE_URL, else the embedded one\n"
                    "under --data-dir (created if need be).",
        example_lines=["ledger import ledger.ndjson --database-url postgresql://ledger@db/empty",
                       "zcat ledger.ndjson.gz | ledger import --data-dir /var/lib/ledger"])
    into.add_argument("input", nargs="?", type=Path, default=None, help="the export (default: stdin)")
    options.add_settings_flags(into, options.DATABASE)
    into.set_defaults(func=run_import)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        handle = path.open("wb")
    except OSError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot write {path}: {exc.strerror or exc}") from exc
    with handle:
        yield handle


async def export_http(client: http.Client, out: BinaryIO, *, after: int, until: int | None, fmt: str) -> int:
    """Follow the feed's next links; ndjson pages are copied through, CloudEvents batches split.

    The next page is requested as soon as a page's headers name it, so the service prepares it
    while this one is still being received and written.
    """
    import aiohttp
    import msgspec

    from api import cloudevents, feed
    from cli import verify as verify_cli

    page_size = feed.MAX_LIMIT
    batch = msgspec.json.Decoder(list[msgspec.Raw])
    accept = feed.NDJSON if fmt == "ndjson" else cloudevents.BATCH_CONTENT_TYPE
    query = f"after={after}&limit={page_size}" + (f"&until={until}" if until is not None else "")
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, headers=client.default_headers) as session:
        base = client.base_url
        head = (await asyncio.to_thread(client.get, "/v1/digest"))["position"]
        total = max(0, min(head, until if until is not None else head) - after)
        upcoming: asyncio.Task[aiohttp.ClientResponse] | None = asyncio.create_task(
            aio.open_get(session, f"{base}/v1/feed?{query}", accept, client))
        try:
            with verify_cli.progress_bar(total, "export") as bar:
                while upcoming is not None:
                    resp = await upcoming
                    following = resp.links.get("next")
                    upcoming = None
                    if following is not None:
                        upcoming = asyncio.create_task(
                            aio.open_get(session, str(resp.url.join(following["url"])),  # type: ignore[arg-type]
                                         accept, client))
                    async with resp:
                        body = await resp.read()
                    if fmt == "ndjson":
                        out.write(body)
                        n = body.count(b"\n")
                    else:
                        events = batch.decode(body)
                        out.write(b"".join(bytes(e) + b"\n" for e in events))
                        n = len(events)
                    count += n
                    bar.update(n)
                    if n < page_size:
                        break
        finally:
            if upcoming is not None:
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, exits.Failure):
                    (await upcoming).release()
    return count


def _encode(page: list[records.RecordedEvent], fmt: str, source: str) -> bytes:
    from api import cloudevents, feed

    if fmt == "ndjson":
        return feed.ndjson(page)
    return b"".join(cloudevents.encode(e, source) + b"\n" for e in page)


async def export_db(conn: asyncpg.Connection, out: BinaryIO, *, after: int, until: int | None, fmt: str,
                    source: str) -> int:
    from api import feed
    from cli import verify as verify_cli
    from ledger import scan
    from ledger import verify as verify_mod

    count = 0
    head, _, _ = await verify_mod.head(conn)
    total = max(0, min(head, until if until is not None else head) - after)
    with verify_cli.progress_bar(total, "export") as bar:
        page: list[records.RecordedEvent] = []
        async with contextlib.aclosing(scan.rows(conn, after, until)) as rows:
            async for event in rows:
                page.append(event)
                if len(page) == feed.MAX_LIMIT:
                    out.write(_encode(page, fmt, source))
                    count += len(page)
                    bar.update(len(page))
                    page.clear()
        out.write(_encode(page, fmt, source))
        count += len(page)
        bar.update(len(page))
    return count


async def _export_database(args: argparse.Namespace, out: BinaryIO, source: str) -> int:
    from cli import database

    async with database.read_only(args.database_url, args.data_dir) as conn:
        return await export_db(conn, out, after=args.after, until=args.until, fmt=args.format, source=source)


def run_export(args: argparse.Namespace) -> int:
    import aiohttp

    if args.after < 0 or (args.until is not None and args.until < args.after):
        raise exits.Failure(exits.Code.USAGE, "--after must be 0 or more and --until at least --after")
    source = settings_mod.load(os.environ).source_uri
    direct = bool(args.database_url or args.data_dir)
    client = None if direct else options.client_from(args)
    with _output(args.output) as out:
        if client is None:
            count = asyncio.run(_export_database(args, out, source))
        else:
            try:
                count = asyncio.run(export_http(client, out, after=args.after, until=args.until,
                                                fmt=args.format))
            except aiohttp.ClientError as exc:
                raise exits.Failure(exits.Code.UNREACHABLE, f"export failed: {type(exc).__name__}: "
                                    f"{exc}") from exc
    print(f"exported {count} events", file=sys.stderr)
    return exits.Code.OK


def _lines(handle: BinaryIO) -> Iterator[bytes]:
    yield from handle


def _input(path: Path | None) -> BinaryIO:
    if path is None:
        return sys.stdin.buffer
    try:
        return path.open("rb")
    except OSError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot read {path}: {exc.strerror or exc}") from exc


async def _import(settings: settings_mod.Settings, handle: BinaryIO) -> importer.Result:
    from cli import database
    from cli import verify as verify_cli
    from ledger import importer

    async with database.migrated(settings) as conn:
        with verify_cli.progress_bar(None, "import") as bar:
            return await importer.restore(conn, _lines(handle), progress=bar.update)


def run_import(args: argparse.Namespace) -> int:
    from ledger import errors, importer

    settings = options.settings_from(args)
    handle = _input(args.input)
    try:
        result = asyncio.run(_import(settings, handle))
    except importer.Refused as exc:
        raise exits.Failure(exits.Code.FAILED, f"import refused, nothing written: {exc}") from exc
    except (errors.LedgerError, OSError) as exc:
        raise exits.Failure(exits.Code.FAILED, f"import failed, nothing written: {exc}") from exc
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    print(f"imported {result.count} events; head {result.position} {result.hash}", file=sys.stderr)
    return 0
