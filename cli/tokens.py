"""``ledger tokens create|list|show|revoke``: access tokens over the API (an admin token is needed).

``create`` prints the secret once, on its own line, and nothing else on stdout (with ``--json``, the
API's answer); it is stored nowhere. Rotating a token: create its successor, switch the clients,
revoke the old one (docs/security.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli import http, options, output, parsers


def create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.targets:
        body["targets"] = args.targets
    if args.deployments:
        body["deployments"] = [g.strip() for g in args.deployments.split(",") if g.strip()]
    if args.expires:
        body["expires"] = args.expires
    answer = options.client_from(args).request("POST", "/v1/tokens", json_body=body).json()
    if output.structured(args):
        output.show(args, answer, str)
        return 0
    scope = _scope(answer)
    expires = answer["expires_at"] or "never"
    print(f"token {answer['name']} ({answer['role']}{scope}, expires {expires}, fingerprint "
          f"{answer['fingerprint']}); the secret, shown this once:", file=sys.stderr)
    print(answer["token"])
    return 0


def _scope(token: dict[str, Any]) -> str:
    parts = []
    if token["scope"]["targets"]:
        parts.append(f"targets {token['scope']['targets']}")
    if token["scope"]["deployments"]:
        parts.append("deployments " + ",".join(token["scope"]["deployments"]))
    return "; " + "; ".join(parts) if parts else ""


def listing(args: argparse.Namespace) -> int:
    body = options.client_from(args).get("/v1/tokens")
    output.show(args, body, lambda b: http.table(
        [(t["name"], t["role"], t["state"], t["scope"]["targets"] or "-",
          ",".join(t["scope"]["deployments"]) or "-", t["expires_at"], t["fingerprint"], t["issued_by"])
         for t in b["tokens"]],
        ["name", "role", "state", "targets", "deployments", "expires", "fingerprint", "issued by"]))
    return 0


def show(args: argparse.Namespace) -> int:
    body = options.client_from(args).get(f"/v1/tokens/{args.name}")
    output.show(args, body, lambda t: "\n".join(f"{k}: {v}" for k, v in t.items()))
    return 0


def revoke(args: argparse.Namespace) -> int:
    params = {"reason": args.reason} if args.reason else None
    body = options.client_from(args).request("DELETE", f"/v1/tokens/{args.name}", json_body=params).json()
    output.show(args, body, lambda t: f"token {t['name']}: {t['state']}")
    return 0


def register(sub: parsers.Subparsers) -> None:
    tokens = parsers.command(
        sub, "tokens", summary="issue, list and revoke access tokens (admin)",
        description="Access tokens: issue one per person or tool, list them, revoke them (an admin token\n"
                    "is needed). Roles, scopes and rotation: docs/security.md.",
        example_lines=["ledger tokens create ci-eu --role deployer --targets region=eu --deployments 'web-*'",
                       "ledger tokens list", "ledger tokens revoke ci-eu --reason 'rotated'"])
    tsub = parsers.subcommands(tokens, "tokens_command")
    new = parsers.command(
        tsub, "create", summary="issue a token and print its secret once",
        description="Issue a token and print its secret once, alone on stdout (it is stored nowhere).",
        example_lines=["ledger tokens create ci-eu --role deployer --targets region=eu --deployments 'web-*,api' "
                       "--expires 90d",
                       "export LEDGER_TOKEN=$(ledger tokens create alice --role viewer)"])
    new.add_argument("name", type=options.name,
                     help="lower-case DNS label; recorded as the actor of everything it does")
    new.add_argument("--role", required=True, choices=("viewer", "deployer", "approver", "admin"),
                     help="what the token may do")
    new.add_argument("--targets", default="", help="label selector the token may deploy to (deployer, approver; "
                     "default: every target)")
    new.add_argument("--deployments", default="", help="comma-separated deployment-name globs, e.g. 'web-*,api' "
                     "(default: every deployment)")
    new.add_argument("--expires", default=None, help="lifetime such as 30d, 12h or 2w (default: never)")
    new.set_defaults(func=create)
    ls = parsers.command(
        tsub, "list", summary="every token: role, scope, state, fingerprint (never a secret)",
        description="List every token: role, scope, state and fingerprint (never a secret).",
        example_lines=["ledger tokens list", "ledger tokens list --json"])
    ls.set_defaults(func=listing)
    one = parsers.command(tsub, "show", summary="one token", description="Show one token (never its secret).",
                          example_lines=["ledger tokens show ci-eu"])
    one.add_argument("name", type=options.name, help="token name")
    one.set_defaults(func=show)
    rev = parsers.command(
        tsub, "revoke", summary="revoke a token (every process refuses it within a second)",
        description="Revoke a token: every process refuses it within a second.",
        example_lines=["ledger tokens revoke ci-eu --reason 'left the team'"])
    rev.add_argument("name", type=options.name, help="token name")
    rev.add_argument("--reason", default="", help="why: recorded with the event")
    rev.set_defaults(func=revoke)
    for parser in (new, ls, one, rev):
        options.add_client_flags(parser)
        output.add_flags(parser)
