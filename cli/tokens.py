"""``ledger tokens create|list|show|revoke``: access tokens over the API (an admin token is needed).

``create`` prints the secret once, on its own line, and nothing else on stdout (with ``--json``, the
API's answer); it is stored nowhere. Rotating a token: create its successor, switch the clients,
revoke the old one (docs/security.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli import client as client_cli
from cli import http


def create(args: argparse.Namespace, client: http.Client) -> int:
    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.targets:
        body["targets"] = args.targets
    if args.deployments:
        body["deployments"] = [g.strip() for g in args.deployments.split(",") if g.strip()]
    if args.expires:
        body["expires"] = args.expires
    answer = client.request("POST", "/v1/tokens", json_body=body).json()
    if args.json:
        client_cli._print(args, answer, str)
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


def listing(args: argparse.Namespace, client: http.Client) -> int:
    body = client.get("/v1/tokens")
    client_cli._print(args, body, lambda b: http.table(
        [(t["name"], t["role"], t["state"], t["scope"]["targets"] or "-",
          ",".join(t["scope"]["deployments"]) or "-", t["expires_at"], t["fingerprint"], t["issued_by"])
         for t in b["tokens"]],
        ["name", "role", "state", "targets", "deployments", "expires", "fingerprint", "issued by"]))
    return 0


def show(args: argparse.Namespace, client: http.Client) -> int:
    body = client.get(f"/v1/tokens/{args.name}")
    client_cli._print(args, body, lambda t: "\n".join(f"{k}: {v}" for k, v in t.items()))
    return 0


def revoke(args: argparse.Namespace, client: http.Client) -> int:
    params = {"reason": args.reason} if args.reason else None
    body = client.request("DELETE", f"/v1/tokens/{args.name}", json_body=params).json()
    client_cli._print(args, body, lambda t: f"token {t['name']}: {t['state']}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("tokens", help="issue, list and revoke access tokens (admin)")
    tsub = tokens.add_subparsers(dest="tokens_command", required=True)
    new = tsub.add_parser("create", help="issue a token and print its secret once",
                          description="Issue a token. Example: ledger tokens create ci-eu --role deployer "
                                      "--targets region=eu --deployments 'web-*' --expires 90d")
    new.add_argument("name", help="lower-case DNS label; recorded as the actor of everything it does")
    new.add_argument("--role", required=True, choices=("viewer", "deployer", "approver", "admin"))
    new.add_argument("--targets", default="", help="label selector the token may deploy to (deployer, approver)")
    new.add_argument("--deployments", default="", help="comma-separated deployment-name globs, e.g. 'web-*,api'")
    new.add_argument("--expires", default=None, help="lifetime such as 30d, 12h or 2w (default: never)")
    new.set_defaults(func=client_cli._command(create))
    ls = tsub.add_parser("list", help="every token: role, scope, state, fingerprint (never a secret)")
    ls.set_defaults(func=client_cli._command(listing))
    one = tsub.add_parser("show", help="one token")
    one.add_argument("name")
    one.set_defaults(func=client_cli._command(show))
    rev = tsub.add_parser("revoke", help="revoke a token (every process refuses it within a second)")
    rev.add_argument("name")
    rev.add_argument("--reason", default="")
    rev.set_defaults(func=client_cli._command(revoke))
    for parser in (new, ls, one, rev):
        client_cli._common(parser)
