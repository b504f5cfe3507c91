"""Progressive rollouts from the command line: ``ledger approve``, ``ledger promote``, ``ledger halt``
(``ledger resume`` resumes a halted rollout too, cli/client.py) and ``ledger rollout``, a live view
of the waves.

``ledger rollout NAME`` shows the waves of the current revision (GET /v1/deployments/{name}/rollout)
and, unless ``--once``, follows the live feed (GET /v1/feed/live, only the types that move a
rollout) and shows them again whenever one of its events arrives, until the rollout completes (exit
0), halts (exit 1) or a newer revision supersedes it (exit 0, saying so). It never polls.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Final

from cli import exits, http, options, output, parsers
from ledger import events

_MOVES: Final = ("RevisionSubmitted", "RolledBack", "WaveStarted", "WaveCompleted", "ApprovalRequested",
                "ApprovalGranted", "RolloutHalted", "RolloutResumed", "RolloutCompleted", "RolloutSuperseded",
                "TargetHealthy", "TargetDegraded", "ApplyFailed")
_PER_TARGET: Final = frozenset({"TargetHealthy", "TargetDegraded", "ApplyFailed"})
REFRESH_SECONDS: Final = 1.0
MOVES: Final = tuple(t for t in _MOVES if t in events.TYPES)  # the event types that move a rollout


def _written(a: dict[str, Any]) -> str:
    what = {"ApprovalGranted": "wave {wave} approved", "WaveStarted": "wave {wave} started",
            "RolloutHalted": "rollout halted", "RolloutResumed": "rollout resumed"}.get(a.get("event") or "", "")
    return f"{a['deployment']}: {what.format(**a)} (revision {a.get('revision')}, position {a['position']})"


def approve(args: argparse.Namespace) -> int:
    answer = options.client_from(args).request(
        "POST", f"/v1/deployments/{args.name}/approve", json_body={"wave": args.wave, "reason": args.message}).json()
    output.show(args, answer, _written)
    return 0


def promote(args: argparse.Namespace) -> int:
    answer = options.client_from(args).request(
        "POST", f"/v1/deployments/{args.name}/promote", json_body={"wave": args.wave, "reason": args.message}).json()
    output.show(args, answer, _written)
    return 0


def halt(args: argparse.Namespace) -> int:
    answer = options.client_from(args).request(
        "POST", f"/v1/deployments/{args.name}/halt", json_body={"reason": args.message}).json()
    output.show(args, answer, _written)
    return 0


def text(body: dict[str, Any]) -> str:
    r = body.get("rollout")
    if r is None:
        return f"{body['deployment']}: revision {body['current_revision']} has no rollout strategy"
    head = f"{body['deployment']}: revision {r['revision']} {r['phase']}"
    if r.get("halted"):
        h = r["halted"]
        head += f" at wave {h['wave']}: {h['reason']}"
    rows = []
    for w in r["waves"]:
        approval = w["approval"]
        approved = "-" if approval is None else (f"by {approval['by']}" if approval["by"] else "waiting")
        rows.append((w["name"], w["state"], f"{w['healthy']}/{len(w['targets'])}", ", ".join(w["failing"]) or "-",
                     approved, w["started_at"] or "-", w["completed_at"] or "-"))
    return head + "\n\n" + http.table(rows, ["wave", "state", "healthy", "failing", "approval", "started",
                                              "completed"])


def _events(client: http.Client, after: int) -> Iterator[dict[str, Any]]:
    """CloudEvents of the live feed after position ``after``, as they come."""
    url = client.url("/v1/feed/live", {"after": after, "types": ",".join(MOVES)})
    request = urllib.request.Request(url, headers={"Accept": "text/event-stream", "User-Agent": "ledger-cli",
                                                   **client.default_headers})
    try:
        stream = urllib.request.urlopen(request, timeout=None)
    except urllib.error.HTTPError as exc:
        raise http.ApiError(exc.code, *http.problem_message(exc.code, exc.read())) from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        raise http.ApiError(0, f"cannot reach the ledger at {client.base_url}: {exc}") from exc
    with stream:
        data: list[str] = []
        for raw in stream:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                yield json.loads("\n".join(data))
                data = []


def _concerns(event: dict[str, Any], name: str) -> bool:
    data = event.get("data")
    return isinstance(data, dict) and data.get("deployment") == name


def rollout(args: argparse.Namespace) -> int:
    client = options.client_from(args)
    body = client.get(f"/v1/deployments/{args.name}/rollout")
    output.show(args, body, text)
    revision = body["current_revision"]
    if args.once:
        return _exit(body) or exits.Code.OK
    shown = time.monotonic()
    while _exit(body) is None:
        for event in _events(client, body["position"]):
            if not _concerns(event, args.name):
                continue
            if str(event.get("type", "")).rsplit(".", 1)[-1] in _PER_TARGET and time.monotonic() - shown < REFRESH_SECONDS:
                continue  # health reports come by the thousand: redrawn at most once a second
            shown = time.monotonic()
            body = client.get(f"/v1/deployments/{args.name}/rollout")
            output.show(args, body, text)
            if body["current_revision"] != revision:
                print(f"revision {revision} was superseded by revision {body['current_revision']}")
                return exits.Code.OK
            if _exit(body) is not None:
                break
    return _exit(body) or exits.Code.OK


def _exit(body: dict[str, Any]) -> int | None:
    r = body.get("rollout")
    if r is None or r["phase"] == "completed":
        return exits.Code.OK
    if r["phase"] == "halted":
        return exits.Code.FAILED
    return None


def register(sub: parsers.Subparsers) -> None:
    app = parsers.command(
        sub, "approve", summary="approve a wave of a deployment's rollout",
        description="Approve a wave of the current revision's rollout (approver or admin; whoever submitted\n"
                    "the revision cannot approve its waves unless admin).",
        example_lines=["ledger approve web --wave early -m 'canary looks good'"])
    options.add_deployment_name(app)
    app.add_argument("--wave", required=True, help="the wave to approve")
    app.add_argument("-m", "--message", default="", help="why: recorded with the approval")
    app.set_defaults(func=approve)

    pro = parsers.command(
        sub, "promote", summary="start a rollout's next wave now, ending its soak early",
        description="Start the named wave now, though the wave before it is still soaking.",
        example_lines=["ledger promote web --wave rest -m 'hotfix'"])
    options.add_deployment_name(pro)
    pro.add_argument("--wave", required=True, help="the wave to start")
    pro.add_argument("-m", "--message", default="", help="why")
    pro.set_defaults(func=promote)

    hal = parsers.command(
        sub, "halt", summary="halt a deployment's rollout (no further wave starts)",
        description="Halt the current revision's rollout: targets it reached keep it, no further wave\n"
                    "starts; 'ledger resume' continues it.",
        example_lines=["ledger halt web -m 'error rate up in eu'"])
    options.add_deployment_name(hal)
    hal.add_argument("-m", "--message", default="", help="why: recorded with the halt")
    hal.set_defaults(func=halt)

    view = parsers.command(
        sub, "rollout", summary="the waves of a deployment's rollout, live",
        description="Show the waves of the current revision's rollout and follow them live until the\n"
                    "rollout completes (exit 0) or halts (exit 1).",
        example_lines=["ledger rollout web", "ledger rollout web --once --json"])
    options.add_deployment_name(view)
    view.add_argument("--once", action="store_true", help="show the rollout once and exit")
    view.set_defaults(func=rollout)

    for parser in (app, pro, hal, view):
        options.add_client_flags(parser)
        output.add_flags(parser)
