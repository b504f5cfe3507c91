"""Who may call what: one table from (method, route) to the permission it needs, and roles as sets
of permissions (after Argo CD's RBAC policy: the table is data that tests and docs walk).

Deny by default: a route of the application without a row here answers 403 to everyone, and the
route x role matrix test (tests/test_authz_matrix.py) fails until it gets one. ``HEAD`` follows the
row of ``GET``.

Permissions:

- ``public``: no token (liveness and readiness probes; the API reference page and its assets,
  which render /openapi.json in the browser but hold nothing about the API themselves);
- ``read``: every read, the feed, live events, export, verification, metrics;
- ``deploy``: revisions, rollback, pause and resume, within the token's scope;
- ``approve``: approving rollout waves, within the token's scope (the routes arrive with
  progressive rollouts; the permission exists so tokens can be issued for it now);
- ``admin``: targets, tokens, freezes (and overriding one), removal, import, and the generic append
  ``POST /v1/streams/{stream}/events``. Only admins may use the generic append, and admin tokens
  carry no scope, so it can never be a way around a scope.

``scoped`` rows act on the deployment named by ``{name}``: a scoped token must name a deployment
its globs allow (checked in api/auth.py), and the command itself keeps the targets inside the
token's target selector (projections/commands.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ledger import events

Permission = Literal["public", "read", "deploy", "approve", "admin"]


@dataclass(frozen=True)
class Rule:
    permission: Permission
    scoped: bool = False
    # A setting that, when true, makes the route public (``metrics_public`` for /metrics).
    public_if: str | None = None


PUBLIC: Final = Rule("public")
READ: Final = Rule("read")
ADMIN: Final = Rule("admin")
DEPLOY: Final = Rule("deploy", scoped=True)

RULES: Final[dict[tuple[str, str], Rule]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): Rule("read", public_if="metrics_public"),
    ("GET", "/openapi.json"): READ,
    # The reference page and its assets render /openapi.json; they hold nothing about the API.
    ("GET", "/api"): PUBLIC,
    ("GET", "/api/assets/{asset}"): PUBLIC,
    ("POST", "/v1/streams/{stream}/events"): ADMIN,
    ("GET", "/v1/streams/{stream}"): READ,
    ("GET", "/v1/events"): READ,
    ("GET", "/v1/feed"): READ,
    ("GET", "/v1/feed/live"): READ,
    ("GET", "/v1/verify"): READ,
    ("GET", "/v1/digest"): READ,
    ("GET", "/v1/state"): READ,
    ("PUT", "/v1/targets/{name}"): ADMIN,
    ("DELETE", "/v1/targets/{name}"): ADMIN,
    ("GET", "/v1/targets"): READ,
    ("GET", "/v1/targets/{name}"): READ,
    ("POST", "/v1/deployments/{name}/revisions"): DEPLOY,
    ("POST", "/v1/deployments/{name}/rollback"): DEPLOY,
    ("POST", "/v1/deployments/{name}/pause"): DEPLOY,
    ("POST", "/v1/deployments/{name}/resume"): DEPLOY,
    ("DELETE", "/v1/deployments/{name}"): ADMIN,
    ("GET", "/v1/deployments"): READ,
    ("GET", "/v1/deployments/{name}"): READ,
    ("GET", "/v1/deployments/{name}/revisions"): READ,
    ("GET", "/v1/deployments/{name}/revisions/{number}"): READ,
    ("GET", "/v1/deployments/{name}/diff"): READ,
    ("POST", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens/{name}"): ADMIN,
    ("DELETE", "/v1/tokens/{name}"): ADMIN,
    ("PUT", "/v1/freezes/{name}"): ADMIN,
    ("DELETE", "/v1/freezes/{name}"): ADMIN,
    ("GET", "/v1/freezes"): READ,
}

ROLE_PERMISSIONS: Final[dict[events.Role, frozenset[Permission]]] = {
    "viewer": frozenset({"read"}),
    "deployer": frozenset({"read", "deploy"}),
    "approver": frozenset({"read", "approve"}),
    "admin": frozenset({"read", "deploy", "approve", "admin"}),
}
# Roles whose tokens may carry a scope; a viewer's reads and an admin's power are never scoped.
SCOPABLE: Final[frozenset[events.Role]] = frozenset({"deployer", "approver"})


def rule_for(method: str, path: str) -> Rule | None:
    return RULES.get(("GET" if method == "HEAD" else method, path))


def allows(role: events.Role, permission: Permission) -> bool:
    return permission == "public" or permission in ROLE_PERMISSIONS[role]


def roles_with(permission: Permission) -> list[events.Role]:
    return [role for role in events.ROLES if allows(role, permission)]


def markdown_table() -> str:
    """The policy as the table docs/security.md shows (a test holds the two together)."""
    lines = ["| method | route | permission | viewer | deployer | approver | admin |",
             "|---|---|---|:-:|:-:|:-:|:-:|"]
    for (method, path), rule in sorted(RULES.items(), key=lambda item: (item[0][1], item[0][0])):
        what = rule.permission + (" (scoped)" if rule.scoped else "")
        if rule.public_if:
            what += f"; public if {rule.public_if}"
        marks = ["yes" if allows(role, rule.permission) else "-" for role in events.ROLES]
        lines.append(f"| {method} | `{path}` | {what} | " + " | ".join(marks) + " |")
    return "\n".join(lines)
