"""Client commands over the HTTP API: targets, deploy, history, diff, rollback, pause, resume,
remove, status and state.

Readable tables by default, ``--json`` for scripts (the API's own JSON, unchanged). The server is
``--url``, else ``LEDGER_URL``, else http://127.0.0.1:8080; the token comes from cli/credentials.py.
The actor recorded with every write is the token's name; ``--actor`` (default: the login name) is
recorded beside it as ``on_behalf_of``. Reads of the read models reflect every write acknowledged
before them (the server's default), so ``ledger deploy`` followed by ``ledger status`` shows the
deployment.
An error prints the server's problem detail and exits 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import credentials, http


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="ledger API base URL (env LEDGER_URL; default "
                        f"{http.DEFAULT_URL})")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    parser.add_argument("--actor", default=None, help="who you act for, recorded as on_behalf_of beside the "
                        "token's name (default: login name)")
    parser.add_argument("--token", default=None, help="access token (env LEDGER_TOKEN, preferable; default for a "
                        "local service: <data dir>/admin.token)")


def _client(args: argparse.Namespace) -> http.Client:
    try:
        actor = args.actor or getpass.getuser()
    except (KeyError, OSError):
        actor = None
    url = args.url or os.environ.get("LEDGER_URL") or http.DEFAULT_URL
    return http.Client(url, actor=actor, default_headers=credentials.headers(args.token, url))


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _print(args: argparse.Namespace, body: Any, render: Callable[[Any], str]) -> None:
    print(json.dumps(body, indent=2) if args.json else render(body))


def _command(func: Callable[[argparse.Namespace, http.Client], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args, _client(args))
        except http.ApiError as exc:
            print(f"ledger: {exc.message}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"ledger: {exc}", file=sys.stderr)
            return 1

    return run


# --- targets -------------------------------------------------------------------------------------

def _targets_table(body: Any) -> str:
    return http.table([(t["name"], http.labels_text(t["labels"]), t.get("credentials") or "-",
                        "retired" if t["retired"] else "active", t["version"]) for t in body["targets"]],
                      ["name", "labels", "credentials", "status", "version"])


def targets_add(args: argparse.Namespace, client: http.Client) -> int:
    body = {"labels": dict(args.label), "credentials": args.credentials, "server": args.server}
    answer = client.request("PUT", f"/v1/targets/{args.name}", json_body=body).json()
    _print(args, answer, lambda a: f"target {a['target']}: {a['event'] or 'unchanged'} "
                                   f"(version {a['version']}, position {a['position']})")
    return 0


def targets_list(args: argparse.Namespace, client: http.Client) -> int:
    body = client.read("/v1/targets", selector=args.selector, include_retired="true" if args.all else None)
    _print(args, body, _targets_table)
    return 0


def targets_retire(args: argparse.Namespace, client: http.Client) -> int:
    answer = client.request("DELETE", f"/v1/targets/{args.name}").json()
    _print(args, answer, lambda a: f"target {a['target']} retired (position {a['position']})")
    return 0


# --- deployments ---------------------------------------------------------------------------------

def _written(a: dict[str, Any]) -> str:
    what = {"RevisionSubmitted": "revision {revision} submitted",
            "RolledBack": "revision {revision} rolls back to {rolled_back_to}",
            "DeploymentPaused": "paused", "DeploymentResumed": "resumed",
            "DeploymentRemoved": "removed"}.get(a.get("event") or "", "unchanged").format(**a)
    line = f"{a['deployment']}: {what} (position {a['position']})"
    if "matched_targets" in a:
        matched = a["matched_targets"]
        line += f"\nmatched {len(matched)} target(s)" + (": " + ", ".join(matched) if matched else "")
    return line


def deploy(args: argparse.Namespace, client: http.Client) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    answer = client.request(
        "POST", f"/v1/deployments/{args.name}/revisions", data=text.encode(), content_type="application/yaml",
        params={"selector": args.selector, "message": args.message, "expected_version": args.expected_version},
    ).json()
    _print(args, answer, _written)
    return 0


def rollback(args: argparse.Namespace, client: http.Client) -> int:
    answer = client.request("POST", f"/v1/deployments/{args.name}/rollback",
                            json_body={"to_revision": args.to, "message": args.message}).json()
    _print(args, answer, _written)
    return 0


def _reason(verb: str) -> Callable[[argparse.Namespace, http.Client], int]:
    def run(args: argparse.Namespace, client: http.Client) -> int:
        method, path = ("DELETE", "") if verb == "remove" else ("POST", f"/{verb}")
        answer = client.request(method, f"/v1/deployments/{args.name}{path}",
                                json_body={"reason": args.reason}).json()
        _print(args, answer, _written)
        return 0

    return run


def history(args: argparse.Namespace, client: http.Client) -> int:
    body = client.read(f"/v1/deployments/{args.name}/revisions", limit=args.limit, from_revision=args.from_revision)
    _print(args, body, lambda b: http.table(
        [(("* " if r["revision"] == b["current_revision"] else "  ") + str(r["revision"]), r["recorded_at"],
          r["actor"], r["selector"] or '""', len(r["matched_targets"]),
          r["rolled_back_to"], r["message"])
         for r in b["revisions"]],
        ["rev", "recorded at", "actor", "selector", "targets", "restores", "message"]))
    return 0


def diff(args: argparse.Namespace, client: http.Client) -> int:
    params = {"from": args.a, "to": args.b}
    if args.json:
        print(json.dumps(client.read(f"/v1/deployments/{args.name}/diff", **params), indent=2))
    else:
        text = client.request("GET", f"/v1/deployments/{args.name}/diff", accept="text/plain",
                              params=params).text
        print(text or f"revisions {args.a} and {args.b} have the same manifests", end="" if text else "\n")
    return 0


def _summary(s: dict[str, int]) -> str:
    return f"{s['applied']}/{s['targets']} applied, {s['failed']} failed, {s['pending'] + s['applying']} pending"


def _deployment_text(d: dict[str, Any]) -> str:
    flags = " (removed)" if d["removed"] else f" (paused: {d['pause_reason'] or 'no reason'})" if d["paused"] else ""
    selector = d["selector"] or '""'
    head = f"{d['name']}: revision {d['current_revision']}, selector {selector}{flags}\n{_summary(d['summary'])}"
    rows = [(r["target"], r["desired_revision"], r["applied_revision"], r["state"], r["attempts"],
             (r["last_error"] or "")[:80]) for r in d["rollouts"]]
    return head + ("\n\n" + http.table(rows, ["target", "desired", "applied", "state", "attempts", "last error"])
                   if rows else "")


def status(args: argparse.Namespace, client: http.Client) -> int:
    if args.name:
        _print(args, client.read(f"/v1/deployments/{args.name}"), _deployment_text)
        return 0
    body = client.read("/v1/deployments", include_removed="true" if args.all else None)
    _print(args, body, lambda b: http.table(
        [(d["name"], d["current_revision"], d["selector"] or '""',
          "removed" if d["removed"] else "paused" if d["paused"] else "active", _summary(d["summary"]))
         for d in b["deployments"]], ["name", "revision", "selector", "status", "rollout"]))
    return 0


def state(args: argparse.Namespace, client: http.Client) -> int:
    body = client.get("/v1/state", at=args.at)

    def render(b: Any) -> str:
        lines = [f"fleet at position {b['position']} (recorded {b['recorded_at'] or 'never'}; head {b['head']})", ""]
        lines.append(http.table(
            [(d["name"], d["current_revision"], d["selector"] or '""',
              "removed" if d["removed"] else "paused" if d["paused"] else "active", _summary(d["summary"]))
             for d in b["deployments"]], ["deployment", "revision", "selector", "status", "rollout"]))
        lines.append("")
        lines.append(http.table(
            [(t["name"], http.labels_text(t["labels"]), "retired" if t["retired"] else "active",
              ", ".join(f"{r['deployment']}@{r['applied_revision'] or '-'} {r['state']}" for r in t["rollouts"]))
             for t in b["targets"]], ["target", "labels", "status", "applied"]))
        return "\n".join(lines)

    _print(args, body, render)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    targets = sub.add_parser("targets", help="register, list and retire target clusters")
    tsub = targets.add_subparsers(dest="targets_command", required=True)
    add = tsub.add_parser("add", help="register a target, or update it (PUT)")
    add.add_argument("name")
    add.add_argument("--credentials", "-c", required=True, metavar="NAME",
                     help="a credential of the operator's credentials file (it brings the API server)")
    add.add_argument("--server", help="the API server URL, to check it is the credential's (optional)")
    add.add_argument("--label", "-l", action="append", type=_label, default=[], metavar="KEY=VALUE")
    add.set_defaults(func=_command(targets_add))
    listing = tsub.add_parser("list", help="list targets, optionally by label selector")
    listing.add_argument("--selector", "-l", help="Kubernetes label selector, e.g. region=eu,tier!=canary")
    listing.add_argument("--all", action="store_true", help="include retired targets")
    listing.set_defaults(func=_command(targets_list))
    retire = tsub.add_parser("retire", help="retire a target (its name is not reused)")
    retire.add_argument("name")
    retire.set_defaults(func=_command(targets_retire))
    for parser in (add, listing, retire):
        _common(parser)

    dep = sub.add_parser("deploy", help="submit a new revision of a deployment")
    dep.add_argument("name")
    dep.add_argument("-f", "--file", required=True, help="multi-document YAML manifests ('-' reads stdin)")
    dep.add_argument("--selector", "-l", help="label selector of the targets (default: keep the current one)")
    dep.add_argument("-m", "--message", default="", help="why: recorded with the revision")
    dep.add_argument("--expected-version", help="fail with 409 unless the deployment is at this version")
    dep.set_defaults(func=_command(deploy))

    hist = sub.add_parser("history", help="the revisions of a deployment: who, when, why, where")
    hist.add_argument("name")
    hist.add_argument("--limit", type=int, default=100)
    hist.add_argument("--from-revision", type=int, default=1)
    hist.set_defaults(func=_command(history))

    dif = sub.add_parser("diff", help="unified diff of two revisions' manifests")
    dif.add_argument("name")
    dif.add_argument("a", type=int, help="from revision")
    dif.add_argument("b", type=int, help="to revision")
    dif.set_defaults(func=_command(diff))

    back = sub.add_parser("rollback", help="record a new revision restoring an earlier one")
    back.add_argument("name")
    back.add_argument("--to", type=int, required=True, help="revision to restore")
    back.add_argument("-m", "--message", default="")
    back.set_defaults(func=_command(rollback))

    verbs = []
    for verb, text in (("pause", "stop applying a deployment"), ("resume", "apply a paused deployment again"),
                       ("remove", "remove a deployment (pruned from every target)")):
        parser = sub.add_parser(verb, help=text)
        parser.add_argument("name")
        parser.add_argument("--reason", default="")
        parser.set_defaults(func=_command(_reason(verb)))
        verbs.append(parser)

    stat = sub.add_parser("status", help="deployments and their rollouts per target")
    stat.add_argument("name", nargs="?")
    stat.add_argument("--all", action="store_true", help="include removed deployments")
    stat.set_defaults(func=_command(status))

    at = sub.add_parser("state", help="the whole fleet at a log position or moment (audit replay)")
    at.add_argument("--at", default="head", help="a log position, an RFC 3339 time, or head")
    at.set_defaults(func=_command(state))

    for parser in (dep, hist, dif, back, *verbs, stat, at):
        _common(parser)
