"""The token table: access tokens folded from ``token-*`` streams, and the check of a presented one.

Every process keeps this table in memory (api/auth.py follows the log into it), so authenticating a
request costs a hash and a dict lookup, never a database round trip. The fold and the check are
pure: the clock comes in as an argument.

Decisions:

- A name is reused only after its token was revoked: the new TokenIssued replaces the old entry,
  the old secret stops working (a stream's history keeps both).
- A revoked token stays in the table, so that its presenter is told "revoked" rather than
  "unknown"; it authenticates nothing.
- The operator's admin token (``LEDGER_ADMIN_TOKEN``) is not in the log; it sits beside the fold as
  ``operator`` and is checked the same way.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Final, Literal

from ledger import events, records, secrets
from projections import commands, fleet, selectors

OPERATOR_NAME: Final = "admin-env"
Refusal = Literal["missing", "malformed", "unknown", "expired", "revoked"]

REASONS: Final[dict[Refusal, str]] = {
    "missing": "this endpoint needs a token: send Authorization: Bearer <token>",
    "malformed": "the Authorization header must be 'Bearer <token>'",
    "unknown": "the token is not known",
    "expired": "the token has expired",
    "revoked": "the token was revoked",
}


class Refused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(REASONS[reason])
        self.reason = reason


@dataclass(slots=True)
class Token:
    name: str
    role: events.Role
    digest: bytes = field(repr=False)
    fingerprint: str
    scope: events.Scope = field(default_factory=events.Scope)
    expires_at: dt.datetime | None = None
    issued_at: dt.datetime | None = None
    issued_by: str | None = None
    revoked: bool = False
    revoked_at: dt.datetime | None = None
    revoked_by: str | None = None
    version: int = 0
    position: int = 0
    expires_epoch: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_epoch is not None and now >= self.expires_epoch

    def public(self, now: float) -> dict[str, object]:
        """What the API and CLI show of a token (never its secret, nor its hash)."""
        state = "revoked" if self.revoked else "expired" if self.expired(now) else "active"
        return {
            "name": self.name,
            "role": self.role,
            "scope": {"targets": self.scope.targets, "deployments": list(self.scope.deployments)},
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "fingerprint": self.fingerprint,
            "state": state,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "issued_by": self.issued_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "version": self.version,
        }


@dataclass
class Table:
    by_name: dict[str, Token] = field(default_factory=dict)
    by_digest: dict[bytes, Token] = field(default_factory=dict)
    operator: Token | None = None
    # How far the log has been read (apply_recorded). Applying an event this process just appended
    # does not move it: the log may hold token events of other processes before that one.
    position: int = 0

    def active_admin(self, now: float) -> bool:
        return any(t.role == "admin" and not t.revoked and not t.expired(now) for t in self.by_name.values())


def operator_token(secret: str) -> Token:
    found = secrets.digest(secret)
    return Token(name=OPERATOR_NAME, role="admin", digest=found, fingerprint=secrets.fingerprint(found))


def apply(table: Table, event: events.AnyEvent, position: int, version: int, recorded_at: dt.datetime,
          actor: str | None) -> None:
    match event:
        case events.TokenIssued():
            old = table.by_name.get(event.name)
            if old is not None and old.position >= position:
                return  # seen already (a process applies its own appends before the log shows them)
            if old is not None:
                table.by_digest.pop(old.digest, None)
            digest = bytes.fromhex(event.secret_sha256)
            token = Token(
                name=event.name, role=event.role, digest=digest, fingerprint=event.fingerprint,
                scope=event.scope, expires_at=event.expires_at, issued_at=recorded_at, issued_by=actor,
                version=version, position=position,
                expires_epoch=event.expires_at.timestamp() if event.expires_at else None)
            table.by_name[event.name] = token
            table.by_digest[digest] = token
        case events.TokenRevoked():
            found = table.by_name.get(event.name)
            if found is not None and found.position < position:
                found.revoked = True
                found.revoked_at = recorded_at
                found.revoked_by = actor
                found.version = version
                found.position = position


def apply_recorded(table: Table, rec: records.RecordedEvent) -> None:
    try:
        event: events.AnyEvent | None = events.decode(rec.type, rec.data)
    except events.DecodeError:
        event = None
    if event is not None:
        apply(table, event, rec.position, rec.version, rec.recorded_at, fleet.actor_of(rec.type, rec.metadata))
    table.position = max(table.position, rec.position)


def check(table: Table, authorization: str | None, now: float) -> Token:
    """The token an ``Authorization`` header presents, or :class:`Refused` saying why not."""
    if not authorization:
        raise Refused("missing")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or " " in secret:
        raise Refused("malformed")
    presented = secrets.digest(secret)
    found = table.by_digest.get(presented)
    if found is None and table.operator is not None and secrets.same(table.operator.digest, presented):
        found = table.operator
    if found is None or not secrets.same(found.digest, presented):
        raise Refused("unknown")
    if found.revoked:
        raise Refused("revoked")
    if found.expired(now):
        raise Refused("expired")
    return found


# --- decisions: issuing and revoking -----------------------------------------------------------

SCOPABLE: Final[frozenset[events.Role]] = frozenset({"deployer", "approver"})
_GLOB: Final = re.compile(r"[a-z0-9*?\[\]-]{1,63}")
_DURATION: Final = re.compile(r"(\d{1,6})([smhdw])")
_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_LIFETIME: Final = dt.timedelta(days=3660)


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s`` or ``2w``; raises commands.Invalid naming ``expires``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise commands.Invalid(f"expected a duration like 30d, 12h, 90m or 2w, got {text!r}", field="expires")
    found = dt.timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])
    if not dt.timedelta(0) < found <= MAX_LIFETIME:
        raise commands.Invalid(f"must be more than 0 and at most {MAX_LIFETIME.days} days, got {text!r}",
                               field="expires")
    return found


def validate_scope(role: events.Role, scope: events.Scope) -> events.Scope:
    """The scope in canonical form; scopes belong to deployer and approver tokens only."""
    if (scope.targets or scope.deployments) and role not in SCOPABLE:
        raise commands.Invalid(f"a {role} token cannot be scoped; only "
                               f"{' and '.join(sorted(SCOPABLE))} tokens can", field="targets"
                               if scope.targets else "deployments")
    targets = str(selectors.parse(scope.targets, field="targets")) if scope.targets else ""
    for i, glob in enumerate(scope.deployments):
        if not _GLOB.fullmatch(glob):
            raise commands.Invalid(f"{glob!r} is not a deployment-name glob (a-z, 0-9, '-', and * ? [ ])",
                                   field=f"deployments[{i}]")
    return events.Scope(targets=targets, deployments=sorted(set(scope.deployments)))


def issue(table: Table, name: str, role: events.Role, scope: events.Scope, expires_at: dt.datetime | None,
          digest: bytes, now: float | None = None) -> events.TokenIssued:
    """TokenIssued for a new name (or one whose token was revoked or has expired)."""
    if name == OPERATOR_NAME:
        raise commands.Invalid(f"{OPERATOR_NAME!r} is the name of LEDGER_ADMIN_TOKEN's principal", field="name")
    current = table.by_name.get(name)
    if current is not None and not current.revoked and not (now is not None and current.expired(now)):
        raise commands.Conflict(f"token {name} exists (fingerprint {current.fingerprint}); revoke it first "
                                "or choose another name", field="name")
    return events.TokenIssued(name=name, role=role, secret_sha256=digest.hex(),
                              fingerprint=secrets.fingerprint(digest), scope=validate_scope(role, scope),
                              expires_at=expires_at)


def revoke(table: Table, name: str, reason: str = "") -> events.TokenRevoked:
    current = table.by_name.get(name)
    if current is None:
        raise commands.NotFound(f"token {name} does not exist")
    if current.revoked:
        raise commands.Conflict(f"token {name} is revoked already")
    return events.TokenRevoked(name=name, reason=reason)
