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
- ``approve``: approving rollout waves, within the token's scope (never one's own revision's,
  unless admin: projections/rollout_commands.py);
- ``admin``: targets, tokens, freezes (and overriding one), removal, import, and the generic append
  ``POST /v1/streams/{stream}/events``. Only admins may use the generic append, and admin tokens
  carry no scope, so it can never be a way around a scope.

``page`` rows are the web UI (api/ui/): HTML pages, their fragments and forms, and its assets. They
are in this table like every route (deny by default), are left out of /openapi.json (they are not
part of the JSON API), and accept the browser's session cookie as well as a bearer token (a
session is signed in with a token and acts with that token's role and scope). A page refuses in
HTML: a sign-in redirect instead of 401, an error page instead of problem+json. ``session`` marks
the one API route a page reads directly with its session, ``GET /v1/feed/live``, because a
browser's EventSource cannot send an Authorization header.

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
    # A page of the web UI (see the module docstring); pages accept the session cookie.
    page: bool = False
    # An API route that accepts the web UI's session cookie as well as a bearer token.
    session: bool = False

    @property
    def by_session(self) -> bool:
        return self.page or self.session


PUBLIC: Final = Rule("public")
READ: Final = Rule("read")
ADMIN: Final = Rule("admin")
DEPLOY: Final = Rule("deploy", scoped=True)
PUBLIC_PAGE: Final = Rule("public", page=True)
READ_PAGE: Final = Rule("read", page=True)
DEPLOY_PAGE: Final = Rule("deploy", scoped=True, page=True)

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
    ("GET", "/v1/feed/live"): Rule("read", session=True),
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
    ("POST", "/v1/deployments/{name}/approve"): Rule("approve", scoped=True),
    ("POST", "/v1/deployments/{name}/promote"): DEPLOY,
    ("POST", "/v1/deployments/{name}/halt"): DEPLOY,
    ("GET", "/v1/deployments/{name}/rollout"): READ,
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
    # The web UI (api/ui/): pages, their live fragments, forms and assets.
    ("GET", "/"): READ_PAGE,
    ("GET", "/signin"): PUBLIC_PAGE,
    ("POST", "/signin"): PUBLIC_PAGE,
    ("POST", "/signout"): PUBLIC_PAGE,
    ("GET", "/ui/assets/{asset}"): PUBLIC_PAGE,
    ("GET", "/fleet"): READ_PAGE,
    ("GET", "/fleet/matrix"): READ_PAGE,
    ("GET", "/deployments/{name}"): READ_PAGE,
    ("POST", "/deployments/{name}/rollback"): DEPLOY_PAGE,
    ("POST", "/deployments/{name}/pause"): DEPLOY_PAGE,
    ("POST", "/deployments/{name}/resume"): DEPLOY_PAGE,
    ("POST", "/deployments/{name}/approve"): Rule("approve", scoped=True, page=True),
    ("POST", "/deployments/{name}/promote"): DEPLOY_PAGE,
    ("POST", "/deployments/{name}/halt"): DEPLOY_PAGE,
    ("GET", "/targets/{name}"): READ_PAGE,
    ("GET", "/timeline"): READ_PAGE,
    ("GET", "/timeline/rows"): READ_PAGE,
    ("GET", "/audit"): READ_PAGE,
    ("GET", "/audit/digest"): READ_PAGE,
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


def is_page(method: str, path: str) -> bool:
    """Whether the route is a page of the web UI: HTML, outside the JSON API and /openapi.json."""
    rule = rule_for(method, path)
    return rule is not None and rule.page


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
        if rule.page:
            what += "; web UI page"
        elif rule.session:
            what += "; session cookie too"
        marks = ["yes" if allows(role, rule.permission) else "-" for role in events.ROLES]
        lines.append(f"| {method} | `{path}` | {what} | " + " | ".join(marks) + " |")
    return "\n".join(lines)
