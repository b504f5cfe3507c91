"""``ledger export`` and ``ledger import``: the log as a file, and a file back into a ledger.

Export talks to a running service through the HTTP feed by default (``--url``, or LEDGER_URL,
default http://127.0.0.1:8080), so exporting needs no database access and goes through the same
interface other tools use. With ``--database-url`` it reads the database directly through a
server-side cursor instead. Both write the same bytes. Formats, one event per line:

- ``ndjson`` (default): the ledger's own format, every column including metadata, position and
  hashes; it is what ``ledger import`` restores and what an independent verifier reads
  (docs/export.md);
- ``cloudevents``: one CloudEvents 1.0 JSON event per line, as /v1/feed serves them.

Import reads the database directly (it must: it restores rows the writer could not produce) into
an EMPTY ledger, checking the chain as it goes and refusing the whole file at the first bad line
(ledger/importer.py). A progress bar is drawn only when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import msgspec

from api import cloudevents, feed
from cli import credentials, options
from cli import verify as verify_cli
from ledger import db, errors, importer, records, scan
from ledger import settings as settings_mod
from ledger import verify as verify_mod

PAGE = feed.MAX_LIMIT
_batch: msgspec.json.Decoder[list[msgspec.Raw]] = msgspec.json.Decoder(list[msgspec.Raw])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    out = sub.add_parser("export", help="write the log as one event per line (ndjson or CloudEvents)")
    out.add_argument("--after", type=int, default=0, help="start after this position (default 0)")
    out.add_argument("--until", type=int, default=None, help="stop at this position (default head)")
    out.add_argument("--format", choices=("ndjson", "cloudevents"), default="ndjson")
    out.add_argument("-o", "--output", type=Path, default=None, help="write to FILE (default stdout)")
    source = out.add_mutually_exclusive_group()
    source.add_argument("--url", default=None,
                        help="the service to read from (default LEDGER_URL or http://127.0.0.1:8080)")
    out.add_argument("--token", default=None, help="access token (env LEDGER_TOKEN; default for a local "
                     "service: <data dir>/admin.token)")
    source.add_argument("--database-url", default=None,
                        help="read this PostgreSQL database directly instead of the HTTP feed")
    out.set_defaults(func=run_export)

    into = sub.add_parser("import", help="restore an ndjson export into an empty ledger database")
    into.add_argument("input", nargs="?", type=Path, default=None, help="the export (default stdin)")
    options.add_settings_flags(into)
    into.set_defaults(func=run_import)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with path.open("wb") as handle:
        yield handle


async def _open(session: aiohttp.ClientSession, url: str, accept: str) -> aiohttp.ClientResponse:
    resp = await session.get(url, headers={"Accept": accept})
    if resp.status != 200:
        body = (await resp.read()).decode(errors="replace")
        resp.release()
        raise SystemExit(f"ledger: {resp.url} answered {resp.status}: {body}")
    return resp


async def export_http(base: str, out: BinaryIO, *, after: int, until: int | None, fmt: str,
                      token: str | None = None) -> int:
    """Follow the feed's next links; ndjson pages are copied through, CloudEvents batches split.

    The next page is requested as soon as a page's headers name it, so the service prepares it
    while this one is still being received and written.
    """
    accept = feed.NDJSON if fmt == "ndjson" else cloudevents.BATCH_CONTENT_TYPE
    query = f"after={after}&limit={PAGE}" + (f"&until={until}" if until is not None else "")
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, headers=credentials.headers(token, base)) as session:
        head = (await verify_cli.http_json(f"{base}/v1/digest"))["position"]
        total = max(0, min(head, until if until is not None else head) - after)
        upcoming: asyncio.Task[aiohttp.ClientResponse] | None = asyncio.create_task(
            _open(session, f"{base}/v1/feed?{query}", accept))
        try:
            with verify_cli.progress_bar(total, "export") as bar:
                while upcoming is not None:
                    resp = await upcoming
                    following = resp.links.get("next")
                    upcoming = None
                    if following is not None:
                        upcoming = asyncio.create_task(
                            _open(session, str(resp.url.join(following["url"])), accept))  # type: ignore[arg-type]
                    async with resp:
                        body = await resp.read()
                    if fmt == "ndjson":
                        out.write(body)
                        n = body.count(b"\n")
                    else:
                        events = _batch.decode(body)
                        out.write(b"".join(bytes(e) + b"\n" for e in events))
                        n = len(events)
                    count += n
                    bar.update(n)
                    if n < PAGE:
                        break
        finally:
            if upcoming is not None:
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, SystemExit):
                    (await upcoming).release()
    return count


def _encode(page: list[records.RecordedEvent], fmt: str, source: str) -> bytes:
    if fmt == "ndjson":
        return feed.ndjson(page)
    return b"".join(cloudevents.encode(e, source) + b"\n" for e in page)


async def export_db(database_url: str, out: BinaryIO, *, after: int, until: int | None, fmt: str,
                    source: str) -> int:
    conn = await db.connect(database_url)
    count = 0
    try:
        head, _, _ = await verify_mod.head(conn)
        total = max(0, min(head, until if until is not None else head) - after)
        with verify_cli.progress_bar(total, "export") as bar:
            page: list[records.RecordedEvent] = []
            async with contextlib.aclosing(scan.rows(conn, after, until)) as rows:
                async for event in rows:
                    page.append(event)
                    if len(page) == PAGE:
                        out.write(_encode(page, fmt, source))
                        count += len(page)
                        bar.update(len(page))
                        page.clear()
            out.write(_encode(page, fmt, source))
            count += len(page)
            bar.update(len(page))
    finally:
        await conn.close()
    return count


def run_export(args: argparse.Namespace) -> int:
    if args.after < 0 or (args.until is not None and args.until < args.after):
        print("ledger: --after must be 0 or more and --until at least --after", file=sys.stderr)
        return 2
    source = settings_mod.load(os.environ).source_uri
    try:
        with _output(args.output) as out:
            if args.database_url:
                count = asyncio.run(export_db(args.database_url, out, after=args.after,
                                              until=args.until, fmt=args.format, source=source))
            else:
                base = (args.url or os.environ.get("LEDGER_URL") or "http://127.0.0.1:8080").rstrip("/")
                count = asyncio.run(export_http(base, out, after=args.after, until=args.until,
                                                fmt=args.format, token=args.token))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"ledger: export failed: {exc}", file=sys.stderr)
        return 2
    print(f"exported {count} events", file=sys.stderr)
    return 0


def _lines(path: Path | None) -> Iterator[bytes]:
    if path is None:
        yield from sys.stdin.buffer
        return
    with path.open("rb") as handle:
        yield from handle


async def _import(settings: settings_mod.Settings, path: Path | None) -> importer.Result:
    async with verify_cli.connect(settings) as conn:
        with verify_cli.progress_bar(None, "import") as bar:
            return await importer.restore(conn, _lines(path), progress=bar.update)


def run_import(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    try:
        result = asyncio.run(_import(settings, args.input))
    except importer.Refused as exc:
        print(f"ledger: import refused, nothing written: {exc}", file=sys.stderr)
        return 1
    except (errors.LedgerError, OSError) as exc:
        print(f"ledger: import failed, nothing written: {exc}", file=sys.stderr)
        return 1
    print(f"imported {result.count} events; head {result.position} {result.hash}", file=sys.stderr)
    return 0
