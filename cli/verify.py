"""``ledger verify`` and ``ledger digest``: the audit trail from the command line.

Both ask the service (``--url``, else ``LEDGER_URL``, else http://127.0.0.1:8080: ``/v1/verify``,
``/v1/digest``), so an auditor needs no database access. With ``--database-url``, or
``--data-dir`` of an existing ledger, they read that database directly instead (cli/database.py:
nothing is created or migrated); the driver is imported only then.

``ledger digest -o FILE`` saves the head ``{position, hash, recorded_at}``; kept where the
database's owner cannot change it, it lets ``ledger verify --digest FILE`` prove later that the
history up to it is unchanged. Exit status: 0 intact, 1 broken, 2 bad usage, 3 unreachable,
4 no ledger there (cli/exits.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from cli import exits, files, options, output, parsers
from ledger import hashing

if TYPE_CHECKING:
    import tqdm


class Digest(msgspec.Struct):
    position: int
    hash: str
    recorded_at: str | None = None


def _source_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("where the log is (one of; default: the service)")
    exclusive = source.add_mutually_exclusive_group()
    options.add_url_flag(exclusive)
    options.add_database_flags(exclusive)
    options.add_token_flag(source)


def register(sub: parsers.Subparsers) -> None:
    check = parsers.command(
        sub, "verify", summary="recompute the hash chain and report the first break",
        description="Recompute the log's hash chain over a range and report the first break.\n"
                    "Exit 0: intact; 1: broken (the first break is printed).",
        example_lines=["ledger verify", "ledger verify --from 5000 --to 9000",
                       "ledger verify --digest digest-2026-11-27.json",
                       "ledger verify --database-url postgresql://ledger@db/ledger"])
    check.add_argument("--from", dest="first", type=int, default=1, help="first position")
    check.add_argument("--to", dest="last", type=int, default=None, help="last position (default: the head)")
    check.add_argument("--digest", type=Path, default=None,
                       help="a saved digest file: prove the history up to it unchanged")
    _source_flags(check)
    output.add_flags(check)
    check.set_defaults(func=run_verify)

    digest = parsers.command(
        sub, "digest", summary="print or save the head's position, hash and time",
        description="Print or save the head of the log: its position, hash and time, as JSON. Keep it\n"
                    "where the database's owner cannot write; 'ledger verify --digest' checks it later.",
        example_lines=["ledger digest -o digest-2026-11-27.json", "ledger digest --url http://ledger:8080"])
    digest.add_argument("-o", "--output", type=Path, default=None, help="write to FILE (default: stdout)")
    _source_flags(digest)
    digest.set_defaults(func=run_digest)


def progress_bar(total: int | None, what: str) -> tqdm.tqdm[Any]:
    import tqdm

    return tqdm.tqdm(total=total, unit=" events", unit_scale=True, desc=what, file=sys.stderr,
                     disable=not sys.stderr.isatty(), leave=False)


def _direct(args: argparse.Namespace) -> bool:
    return bool(args.database_url or args.data_dir)


def _report_text(body: dict[str, Any]) -> str:
    if body["ok"]:
        return (f"OK: positions {body['from']}..{body['to']} intact ({body['checked']} checked); "
                f"head {body['position']} {body['hash']}")
    return f"BROKEN at position {body['position']}: {body['problem']}: {body['detail']}"


def _print_report(args: argparse.Namespace, body: dict[str, Any]) -> int:
    output.show(args, body, _report_text)
    return exits.Code.OK if body["ok"] else exits.Code.FAILED


async def _verify_db(args: argparse.Namespace, digest: Digest | None) -> dict[str, Any]:
    from cli import database
    from ledger import verify as verify_mod

    async with database.read_only(args.database_url, args.data_dir) as conn:
        head, _, _ = await verify_mod.head(conn)
        last = digest.position if digest else args.last
        first = 1 if digest else args.first
        with progress_bar(max(0, min(head, last or head) - first + 1), "verify") as bar:
            if digest is not None:
                report = await verify_mod.check_digest(conn, digest.position, digest.hash,
                                                       progress=bar.update)
            else:
                try:
                    report = await verify_mod.chain(conn, args.first, args.last, progress=bar.update)
                except verify_mod.BeyondHead as exc:
                    raise exits.Failure(exits.Code.USAGE, f"--from {exc}") from exc
    return report.as_dict()


def _verify_http(args: argparse.Namespace, digest: Digest | None) -> dict[str, Any]:
    first, last = (1, digest.position) if digest else (args.first, args.last)
    body: dict[str, Any] = options.client_from(args).get("/v1/verify", **{"from": first, "to": last})
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


def _read_digest(path: Path) -> Digest:
    try:
        return msgspec.json.decode(files.read_bytes(path), type=Digest)
    except msgspec.DecodeError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot read digest {path}: {exc}") from exc


def run_verify(args: argparse.Namespace) -> int:
    if args.first < 1 or (args.last is not None and args.last < args.first):
        raise exits.Failure(exits.Code.USAGE, "--from must be at least 1 and --to at least --from")
    digest = _read_digest(args.digest) if args.digest is not None else None
    if digest is not None and digest.position == 0:
        output.show(args, {"ok": True, "from": 1, "to": 0, "checked": 0, "position": 0, "hash": hashing.GENESIS},
                    lambda b: f"OK: the digest is of an empty log ({b['hash']})")
        return exits.Code.OK
    if _direct(args):
        return _print_report(args, asyncio.run(_verify_db(args, digest)))
    return _print_report(args, _verify_http(args, digest))


async def _digest_db(args: argparse.Namespace) -> dict[str, Any]:
    from cli import database
    from ledger import verify as verify_mod

    async with database.read_only(args.database_url, args.data_dir) as conn:
        position, head_hash, recorded_at = await verify_mod.head(conn)
    return {"position": position, "hash": head_hash,
            "recorded_at": hashing.format_time(recorded_at) if recorded_at is not None else None}


def run_digest(args: argparse.Namespace) -> int:
    body = asyncio.run(_digest_db(args)) if _direct(args) else options.client_from(args).get("/v1/digest")
    text = json.dumps(body) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        files.write_text(args.output, text)
    return exits.Code.OK
