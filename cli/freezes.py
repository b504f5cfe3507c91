"""``ledger freezes list|set|remove``: freeze windows over the API (setting and removing need an
admin token; listing, any token).

``set`` takes either ``--cron``, ``--duration`` and ``--time-zone`` (a recurring window) or ``--from``
and ``--until`` (one window); the service validates them and names the flag's field when it refuses.
What a freeze holds and how to override one: docs/freezes.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from cli import http, options, output, parsers
from projections import commands, tokens
from projections import freezes as freezes_mod


def _window(freeze: dict[str, Any]) -> str:
    if freeze.get("active"):
        return f"active until {freeze['window']['end']}"
    coming = freeze.get("next_window")
    return f"next {coming['start']}" if coming else "over"


def _schedule(freeze: dict[str, Any]) -> str:
    s = freeze["schedule"]
    if s.get("cron"):
        return f"{s['cron']} {s['time_zone']} for {s['duration_seconds']}s"
    return f"{s['from']} .. {s['until']}"


def listing(args: argparse.Namespace) -> int:
    body = options.client_from(args).get("/v1/freezes", include_removed="true" if args.all else None)
    output.show(args, body, lambda b: http.table(
        [(f["name"], f["selector"] or '""', _schedule(f), "removed" if f["removed"] else _window(f),
          len(f["targets"]), f["set_by"], f["reason"]) for f in b["freezes"]],
        ["name", "selector", "schedule", "state", "targets", "set by", "reason"]))
    return 0


def set_freeze(args: argparse.Namespace) -> int:
    schedule: dict[str, Any]
    if args.cron is not None:
        schedule = {"cron": args.cron, "duration_seconds": args.duration, "time_zone": args.time_zone}
    else:
        schedule = {"from": args.from_, "until": args.until}
    body = {"selector": args.selector, "reason": args.reason,
            "schedule": {k: v for k, v in schedule.items() if v is not None}}
    answer = options.client_from(args).request("PUT", f"/v1/freezes/{args.name}", json_body=body).json()
    output.show(args, answer, lambda a: f"freeze {a['freeze']}: "
                + (f"{a['event']} at position {a['position']}" if a["changed"] else "unchanged"))
    return 0


def remove(args: argparse.Namespace) -> int:
    answer = options.client_from(args).request("DELETE", f"/v1/freezes/{args.name}",
                                               json_body={"reason": args.reason}).json()
    output.show(args, answer, lambda a: f"freeze {a['freeze']}: removed at position {a['position']}")
    return 0


def _duration(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return int(tokens.parse_duration(text).total_seconds())
    except commands.Invalid as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def register(sub: parsers.Subparsers) -> None:
    top = parsers.command(
        sub, "freezes", summary="list, set and remove freeze windows (admin writes)",
        description="Freeze windows: while one covers a target, no new revision reaches it (docs/freezes.md).\n"
                    "Setting and removing need an admin token.",
        example_lines=["ledger freezes list",
                       "ledger freezes set nights -l region=eu --cron '0 22 * * *' --duration 8h "
                       "--time-zone Europe/Berlin --reason 'no changes at night'",
                       "ledger freezes remove nights --reason 'season over'"])
    fsub = parsers.subcommands(top, "freezes_command")
    ls = parsers.command(
        fsub, "list", summary="every freeze: schedule, whether it holds now, the targets it covers",
        description="List the freezes in force: schedule, whether each holds now (and until when) or\n"
                    "when it next opens, and how many targets it covers.",
        example_lines=["ledger freezes list", "ledger freezes list --all --json"])
    ls.add_argument("--all", action="store_true", help="list removed freezes too")
    ls.set_defaults(func=listing)
    new = parsers.command(
        fsub, "set", summary="set (create or replace) a freeze window",
        description="Set a freeze window: a recurring one (--cron, --duration, --time-zone) or one\n"
                    "window (--from, --until, RFC 3339 times with an offset).",
        example_lines=["ledger freezes set nights -l region=eu --cron '0 22 * * *' --duration 8h "
                       "--time-zone Europe/Berlin --reason 'no changes at night'",
                       "ledger freezes set black-friday --from 2026-11-27T00:00:00Z --until "
                       "2026-11-30T00:00:00Z --reason 'peak traffic'"])
    new.add_argument("name", type=options.name, help="freeze name (a DNS-1123 label)")
    new.add_argument("--selector", "-l", default="", help="label selector of the targets it covers "
                     "(default: every target)")
    new.add_argument("--reason", required=True, help="why: recorded, and shown to whoever it holds up")
    new.add_argument("--cron", help="five cron fields: when each window opens, local time in --time-zone")
    new.add_argument("--duration", type=_duration, help="how long each window lasts: seconds, or 8h, 90m, 2d")
    new.add_argument("--time-zone", help=f"IANA zone of --cron (default UTC), e.g. Europe/Berlin; "
                     f"windows last {freezes_mod.MIN_DURATION} s to {freezes_mod.MAX_DURATION // 86400} days")
    new.add_argument("--from", dest="from_", help="start of a one-off window (RFC 3339 with an offset)")
    new.add_argument("--until", help="end of a one-off window (RFC 3339 with an offset)")
    new.set_defaults(func=set_freeze)
    rm = parsers.command(
        fsub, "remove", summary="remove a freeze (what it held goes ahead)",
        description="Remove a freeze window: the revisions it held are applied.",
        example_lines=["ledger freezes remove nights --reason 'season over'"])
    rm.add_argument("name", type=options.name, help="freeze name")
    rm.add_argument("--reason", default="", help="why: recorded with the event")
    rm.set_defaults(func=remove)
    for parser in (ls, new, rm):
        options.add_client_flags(parser)
        output.add_flags(parser)
