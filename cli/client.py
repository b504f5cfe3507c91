"""Client commands over the HTTP API for deployments: deploy, history, diff, rollback, pause,
resume, remove, status and state (targets: cli/targets.py).

Readable tables by default, ``--json`` for scripts (the API's own JSON, unchanged). The service is
reached, with a token, as every client command reaches it (cli/options.py, cli/credentials.py). The
actor recorded with every write is the token's name; ``--actor`` (default: the login name) is
recorded beside it as ``on_behalf_of``. Reads of the read models reflect every write acknowledged
before them (the server's default), so ``ledger deploy`` followed by ``ledger status`` shows the
deployment.
An error prints the server's problem detail on one line and exits with the code its status means
(cli/exits.py); ``ledger status`` exits 1 when a target has failed or is degraded, so a script can wait on it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cli import exits, files, http, options, output, parsers
from cli import wait as wait_cli


def _written(a: dict[str, Any]) -> str:
    what = {"RevisionSubmitted": "revision {revision} submitted",
            "RolledBack": "revision {revision} rolls back to {rolled_back_to}",
            "DeploymentPaused": "paused", "DeploymentResumed": "resumed",
            "DeploymentRemoved": "removed", "RolloutResumed": "rollout resumed"}.get(a.get("event") or "", "unchanged").format(**a)
    line = f"{a['deployment']}: {what} (position {a['position']})"
    if "matched_targets" in a:
        matched = a["matched_targets"]
        line += f"\nmatched {len(matched)} target(s)" + (": " + ", ".join(matched) if matched else "")
    return line


def deploy(args: argparse.Namespace) -> int:
    text = files.read_text(args.file)
    files.check_yaml(args.file, text)
    answer = options.client_from(args).request(
        "POST", f"/v1/deployments/{args.name}/revisions", data=text.encode(), content_type="application/yaml",
        params={"selector": args.selector, "message": args.message, "expected_version": args.expected_version,
                "override_reason": args.override,
                "progress_deadline_seconds": args.progress_deadline,
                "self_heal": "false" if args.no_self_heal else None},
    ).json()
    if args.wait:
        if not output.structured(args):
            print(_written(answer))
        return wait_cli.follow(args, args.name, answer["revision"], min_position=answer["position"])
    output.show(args, answer, _written)
    return 0


def rollback(args: argparse.Namespace) -> int:
    answer = options.client_from(args).request(
        "POST", f"/v1/deployments/{args.name}/rollback",
        json_body={"to_revision": args.to, "message": args.message,
                   **({"override": {"reason": args.override}} if args.override else {})}).json()
    output.show(args, answer, _written)
    return 0


def _reason(verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        method, path = ("DELETE", "") if verb == "remove" else ("POST", f"/{verb}")
        answer = options.client_from(args).request(method, f"/v1/deployments/{args.name}{path}",
                                                   json_body={"reason": args.reason}).json()
        output.show(args, answer, _written)
        return 0

    return run


def history(args: argparse.Namespace) -> int:
    body = options.client_from(args).read(f"/v1/deployments/{args.name}/revisions", limit=args.limit,
                                          from_revision=args.from_revision)
    output.show(args, body, _history_text)
    return 0


def _history_text(b: dict[str, Any]) -> str:
    """One row per revision; a ``freeze override`` column (reason, freezes passed) when an admin let
    one of them through freeze windows."""
    overrides = any(r.get("override") for r in b["revisions"])
    extra = ["freeze override"] if overrides else []
    return http.table(
        [(("* " if r["revision"] == b["current_revision"] else "  ") + str(r["revision"]), r["recorded_at"],
          r["actor"], r["selector"] or '""', len(r["matched_targets"]),
          r["rolled_back_to"], r["message"], *([_override(r.get("override"))] if overrides else []))
         for r in b["revisions"]],
        ["rev", "recorded at", "actor", "selector", "targets", "restores", "message", *extra])


def _override(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    passed = f" (past {', '.join(found['freezes'])})" if found["freezes"] else ""
    return f"{found['reason']}{passed}"


def diff(args: argparse.Namespace) -> int:
    client = options.client_from(args)
    params = {"from": args.a, "to": args.b}
    if output.structured(args):
        print(output.dumps(args.output, client.read(f"/v1/deployments/{args.name}/diff", **params)))
    else:
        text = client.request("GET", f"/v1/deployments/{args.name}/diff", accept="text/plain",
                              params=params).text
        print(text or f"revisions {args.a} and {args.b} have the same manifests", end="" if text else "\n")
    return 0


def _summary(s: dict[str, int]) -> str:
    return (f"{s['healthy']}/{s['targets']} healthy, {s['progressing']} progressing, {s['degraded']} degraded, "
            f"{s['failed']} failed, {s['pending'] + s['applying']} pending")


def _state(r: dict[str, Any]) -> str:
    """The state word, ``frozen`` while a freeze holds the target (as the web UI's cell says)."""
    return "frozen" if r.get("frozen") else str(r["state"])


def _why(r: dict[str, Any], held: dict[str, str]) -> str:
    """What the state owes its word to: the freezes holding it, the degraded or failed reason, a
    retried error, or the wave it waits for (``held``: projections/waves.waiting)."""
    if r.get("frozen"):
        return f"held by freeze {', '.join(r['frozen']['freezes'])} until {r['frozen']['until']}"
    if r["state"] in ("degraded", "failed") and r.get("reason"):
        return f"{r['reason']}: {r['message']}" if r.get("message") else str(r["reason"])
    return str(r["last_error"] or held.get(r["target"], ""))


def _deployment_text(d: dict[str, Any], held: dict[str, str] | None = None) -> str:
    flags = " (removed)" if d["removed"] else f" (paused: {d['pause_reason'] or 'no reason'})" if d["paused"] else ""
    selector = d["selector"] or '""'
    head = f"{d['name']}: revision {d['current_revision']}, selector {selector}{flags}\n{_summary(d['summary'])}"
    rows = [(r["target"], r["desired_revision"], r["applied_revision"], _state(r), r["attempts"],
             _why(r, held or {})[:100]) for r in d["rollouts"]]
    return head + ("\n\n" + http.table(rows, ["target", "desired", "applied", "state", "attempts", "reason"])
                   if rows else "")


def status(args: argparse.Namespace) -> int:
    client = options.client_from(args)
    if args.name:
        body = client.read(f"/v1/deployments/{args.name}")
        held: dict[str, str] = {}
        if not output.structured(args) and body["summary"]["pending"] + body["summary"]["applying"]:
            from projections import waves  # only when some target waits: it may wait for a wave

            held = waves.waiting(client.read(f"/v1/deployments/{args.name}/rollout").get("rollout"))
        output.show(args, body, lambda b: _deployment_text(b, held))
        failed = body["summary"]["failed"] + body["summary"]["degraded"]
    else:
        body = client.read("/v1/deployments", include_removed="true" if args.all else None)
        output.show(args, body, lambda b: http.table(
            [(d["name"], d["current_revision"], d["selector"] or '""',
              "removed" if d["removed"] else "paused" if d["paused"] else "active", _summary(d["summary"]))
             for d in b["deployments"]], ["name", "revision", "selector", "status", "rollout"]))
        failed = sum(d["summary"]["failed"] + d["summary"]["degraded"] for d in body["deployments"])
    return exits.Code.FAILED if failed else exits.Code.OK


def state(args: argparse.Namespace) -> int:
    body = options.client_from(args).get("/v1/state", at=args.at)

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

    output.show(args, body, render)
    return 0


def register(sub: parsers.Subparsers) -> None:
    dep = parsers.command(
        sub, "deploy", summary="submit a new revision of a deployment",
        description="Submit the manifests in a multi-document YAML file as the deployment's next revision.\n"
                    "The YAML is checked here first; the service validates each manifest.",
        example_lines=["ledger deploy web -f web.yaml --selector region=eu -m 'nginx 1.27'",
                       "ledger deploy web -f web.yaml -m 'from CI' --wait --timeout 10m",
                       "kustomize build . | ledger deploy web -f - -m 'from CI'"])
    options.add_deployment_name(dep)
    dep.add_argument("-f", "--file", required=True, help="multi-document YAML manifests ('-' reads stdin)")
    dep.add_argument("--selector", "-l", help="label selector of the targets (default: keep the current one)")
    dep.add_argument("-m", "--message", default="", help="why: recorded with the revision")
    dep.add_argument("--expected-version", help="refuse (exit 5) unless the deployment is at this version "
                     "(default: any)")
    dep.add_argument("--override", metavar="REASON", help="admin: let the revision through freeze windows, "
                     "saying why (recorded with it)")
    dep.add_argument("--progress-deadline", type=int, metavar="SECONDS",
                     help="a target not healthy this long after its apply is degraded (default 600)")
    dep.add_argument("--no-self-heal", action="store_true",
                     help="report drift on the targets but leave it alone")
    dep.add_argument("--wait", action="store_true",
                     help="then wait until the revision is healthy on every target: exit 0, 1 (degraded, "
                          "failed), 2 (timeout); with --output json|yaml, only the final state is printed")
    wait_cli.add_timeout_flag(dep)
    dep.set_defaults(func=deploy)

    hist = parsers.command(
        sub, "history", summary="the revisions of a deployment: who, when, why, where",
        description="List a deployment's revisions, the current one marked with '*'.",
        example_lines=["ledger history web", "ledger history web --from-revision 10 --limit 5"])
    options.add_deployment_name(hist)
    hist.add_argument("--limit", type=int, default=100, help="at most this many revisions")
    hist.add_argument("--from-revision", type=int, default=1, help="the first revision listed")
    hist.set_defaults(func=history)

    dif = parsers.command(
        sub, "diff", summary="unified diff of two revisions' manifests",
        description="A unified diff of two revisions' manifests, as YAML.",
        example_lines=["ledger diff web 1 2"])
    options.add_deployment_name(dif)
    dif.add_argument("a", type=int, help="from revision")
    dif.add_argument("b", type=int, help="to revision")
    dif.set_defaults(func=diff)

    back = parsers.command(
        sub, "rollback", summary="record a new revision restoring an earlier one",
        description="Record a new revision whose manifests and selector are those of an earlier one.",
        example_lines=["ledger rollback web --to 1 -m 'the new config breaks logins'"])
    options.add_deployment_name(back)
    back.add_argument("--to", type=int, required=True, help="revision to restore")
    back.add_argument("-m", "--message", default="", help="why: recorded with the revision")
    back.add_argument("--override", metavar="REASON", help="admin: let the rollback through freeze windows, "
                      "saying why (recorded with it)")
    back.set_defaults(func=rollback)

    verbs = []
    for verb, text in (("pause", "stop applying a deployment"), ("resume", "apply a paused deployment again"),
                       ("remove", "remove a deployment (pruned from every target)")):
        parser = parsers.command(sub, verb, summary=text, description=text[0].upper() + text[1:] + ".",
                                 example_lines=[f"ledger {verb} web --reason 'change freeze'"])
        options.add_deployment_name(parser)
        parser.add_argument("--reason", default="", help="why: recorded with the event")
        parser.set_defaults(func=_reason(verb))
        verbs.append(parser)

    stat = parsers.command(
        sub, "status", summary="deployments and their rollouts per target",
        description="Deployments and their rollouts per target. Exits 1 when a target has failed or is\n"
                    "degraded, so a script can tell; 0 otherwise.",
        example_lines=["ledger status", "ledger status web", "ledger status web --json | jq .summary"])
    stat.add_argument("name", nargs="?", type=options.name,
                      help="one deployment, with a row per target (default: all deployments)")
    stat.add_argument("--all", action="store_true", help="include removed deployments")
    stat.set_defaults(func=status)

    at = parsers.command(
        sub, "state", summary="the whole fleet at a log position or moment (audit replay)",
        description="The whole fleet as it was at a log position or a moment, replayed from the log.",
        example_lines=["ledger state --at 2026-11-27T09:00:00Z", "ledger state --at 1200 --json"])
    at.add_argument("--at", default="head", help="a log position, an RFC 3339 time, or head")
    at.set_defaults(func=state)

    for parser in (dep, hist, dif, back, *verbs, stat, at):
        options.add_client_flags(parser)
        output.add_flags(parser)
