"""``ledger verify`` and ``ledger digest``: the audit trail from the command line.

Both read the database the service uses (LEDGER_DATABASE_URL, or the embedded server under
--data-dir, started for the command and stopped again only if this command started it), or,
with ``--url``, ask a running service over HTTP (``/v1/verify``, ``/v1/digest``), so an auditor
needs no database access.

``ledger digest -o FILE`` saves the head ``{position, hash, recorded_at}``; kept where the
database's owner cannot change it, it lets ``ledger verify --digest FILE`` prove later that the
history up to it is unchanged. Exit status: 0 intact, 1 broken, 2 bad usage or unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import tqdm

from cli import credentials, options
from ledger import db, hashing, migrate, pgembed
from ledger import settings as settings_mod
from ledger import verify as verify_mod


class Digest(msgspec.Struct):
    position: int
    hash: str
    recorded_at: str | None = None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser("verify", help="recompute the hash chain and report the first break")
    check.add_argument("--from", dest="first", type=int, default=1, help="first position (default 1)")
    check.add_argument("--to", dest="last", type=int, default=None, help="last position (default head)")
    check.add_argument("--digest", type=Path, default=None,
                       help="a saved digest file: prove the history up to it unchanged")
    check.add_argument("--url", default=None, help="ask this running service instead of the database")
    check.add_argument("--token", default=None, help="access token for --url (env LEDGER_TOKEN)")
    options.add_settings_flags(check)
    check.set_defaults(func=run_verify)

    digest = sub.add_parser("digest", help="print or save the head's position, hash and time")
    digest.add_argument("-o", "--output", type=Path, default=None, help="write to FILE")
    digest.add_argument("--url", default=None, help="ask this running service instead of the database")
    digest.add_argument("--token", default=None, help="access token for --url (env LEDGER_TOKEN)")
    options.add_settings_flags(digest)
    digest.set_defaults(func=run_digest)


@contextlib.asynccontextmanager
async def connect(settings: settings_mod.Settings) -> AsyncIterator[asyncpg.Connection]:
    """A migrated connection to the configured database, embedded or external."""
    embedded: pgembed.EmbeddedPostgres | None = None
    url = settings.database_url or ""
    if not url:
        url, embedded = await asyncio.to_thread(pgembed.start_or_join, settings.data_dir)
    try:
        conn = await db.connect(url, timeout=settings.db_timeout)
        try:
            await migrate.migrate(conn)
            yield conn
        finally:
            await conn.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def progress_bar(total: int | None, what: str) -> tqdm.tqdm[Any]:
    return tqdm.tqdm(total=total, unit=" events", unit_scale=True, desc=what, file=sys.stderr,
                     disable=not sys.stderr.isatty(), leave=False)


async def http_json(url: str, token: str | None = None) -> Any:
    async with aiohttp.ClientSession(headers=credentials.headers(token, url)) as session, session.get(url) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise SystemExit(f"ledger: {url} answered {resp.status}: {body.decode(errors='replace')}")
        return json.loads(body)


def _print_report(body: dict[str, Any]) -> int:
    if body["ok"]:
        print(f"OK: positions {body['from']}..{body['to']} intact ({body['checked']} checked); "
              f"head {body['position']} {body['hash']}")
        return 0
    print(f"BROKEN at position {body['position']}: {body['problem']}: {body['detail']}")
    return 1


async def _verify_db(args: argparse.Namespace, settings: settings_mod.Settings,
                     digest: Digest | None) -> dict[str, Any]:
    async with connect(settings) as conn:
        head, _, _ = await verify_mod.head(conn)
        last = digest.position if digest else args.last
        first = 1 if digest else args.first
        with progress_bar(max(0, min(head, last or head) - first + 1), "verify") as bar:
            if digest is not None:
                report = await verify_mod.check_digest(conn, digest.position, digest.hash,
                                                       progress=bar.update)
            else:
                report = await verify_mod.chain(conn, args.first, args.last, progress=bar.update)
    return report.as_dict()


async def _verify_http(args: argparse.Namespace, digest: Digest | None) -> dict[str, Any]:
    base = args.url.rstrip("/")
    first, last = (1, digest.position) if digest else (args.first, args.last)
    query = f"from={first}" + (f"&to={last}" if last else "")
    body: dict[str, Any] = await http_json(f"{base}/v1/verify?{query}", args.token)
    if digest is None or not body["ok"] or digest.position == 0:
        return body
    if body["position"] < digest.position:
        return {**body, "ok": False, "position": body["position"] + 1, "problem": "gap",
                "detail": f"the log ends at position {body['position']}, "
                          f"the digest was taken at {digest.position}"}
    if body["hash"] != digest.hash:
        return {**body, "ok": False, "problem": "digest",
                "detail": f"the chain up to position {digest.position} ends in {body['hash']}, "
                          f"the digest says {digest.hash}"}
    return body


def run_verify(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    digest = None
    if args.digest is not None:
        try:
            digest = msgspec.json.decode(args.digest.read_bytes(), type=Digest)
        except (OSError, msgspec.DecodeError) as exc:
            print(f"ledger: cannot read digest {args.digest}: {exc}", file=sys.stderr)
            return 2
    if args.first < 1 or (args.last is not None and args.last < args.first):
        print("ledger: --from must be at least 1 and --to at least --from", file=sys.stderr)
        return 2
    if digest is not None and digest.position == 0:
        print(f"OK: the digest is of an empty log ({hashing.GENESIS})")
        return 0
    run: Callable[[], Any] = (
        (lambda: _verify_http(args, digest)) if args.url else (lambda: _verify_db(args, settings, digest)))
    return _print_report(asyncio.run(run()))


async def _digest_db(settings: settings_mod.Settings) -> dict[str, Any]:
    async with connect(settings) as conn:
        position, head_hash, recorded_at = await verify_mod.head(conn)
    return {"position": position, "hash": head_hash,
            "recorded_at": hashing.format_time(recorded_at) if recorded_at is not None else None}


def run_digest(args: argparse.Namespace) -> int:
    settings = options.settings_from(args)
    if args.url:
        body = asyncio.run(http_json(args.url.rstrip("/") + "/v1/digest", args.token))
    else:
        body = asyncio.run(_digest_db(settings))
    text = json.dumps(body) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0
