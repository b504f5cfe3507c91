"""How a target is reached: its access fields, defined once, and the registration check.

``Access`` is the one definition of the fields a target uses to say how it is reached. The target
events inherit it (so stored data keeps its flat shape), the fleet fold keeps it as is, the target
PUT body inherits it, and the applier reads it. A new access field is added here and nowhere else.

Decisions (issue 11, item 6):

- **A target names a credential** of the operator's credentials file (``credentials: eu-1``); the
  API server belongs to the credential. A target may repeat the server (it must then be the same
  URL); it may not name another one. No path and no destination ever come from the API.
- **Deny by default.** A target without a credential is refused. Clusters that need no secret
  (local emulators, test clusters) get an explicit ``anonymous: true`` entry in the file, which a
  target still has to name.
- **Legacy fields.** Events recorded before named credentials carry ``context``, ``credentials_ref``
  (``token-file:<path>``, ``kubeconfig:<path>``), ``ca_ref`` and ``insecure``. They still decode and
  fold (schema evolution: fields keep defaults), but new input that sets one is refused, and the
  applier never reads them (such a target fails permanently, telling the operator to name a
  credential).

:func:`check` is the registration check, pure, with the credentials catalogue passed in: every
rule that can be checked without contacting the cluster, in one place, for every path into the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from ledger import credentials


class Access(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """The fields of a target that decide how it is reached; a change means a new client."""

    credentials: str | None = None
    server: str | None = None
    # Legacy: read from old events only (see the module docstring).
    context: str | None = None
    credentials_ref: str | None = None
    ca_ref: str | None = None
    insecure: bool = False


FIELDS: Final = Access.__struct_fields__
LEGACY: Final = ("context", "credentials_ref", "ca_ref", "insecure")
NONE: Final = Access()


class AccessError(ValueError):
    """A target's access that cannot be accepted; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def of(source: Access) -> Access:
    """The access fields alone, from anything that has them (an event, a request body)."""
    if type(source) is Access:
        return source
    return Access(**{name: getattr(source, name) for name in FIELDS})


def as_dict(found: Access) -> dict[str, Any]:
    """Every access field, defaults included (the shape clients read)."""
    return {name: getattr(found, name) for name in FIELDS}


def check(found: Access, catalogue: Mapping[str, credentials.Credential]) -> None:
    """Refuse what a target may not say (raises AccessError naming the field)."""
    for name in LEGACY:
        if getattr(found, name) != getattr(NONE, name):
            raise AccessError(name, "is no longer accepted: name a credential of the operator's credentials "
                                    "file instead (credentials: NAME); paths never come from the API")
    if found.server is not None:
        problem = credentials.server_problem(found.server)
        if problem is not None:
            raise AccessError("server", f"the URL {problem}")
    if not found.credentials:
        raise AccessError("credentials", "a target must name a credential of the operator's credentials "
                                         "file (credentials: NAME); targets without one are refused")
    entry = catalogue.get(found.credentials)
    if entry is None:
        known = ", ".join(sorted(catalogue)) or "none: no credentials file is loaded"
        raise AccessError("credentials", f"no credential named {found.credentials!r} in the credentials file "
                                         f"(known: {known})")
    if found.server is not None and not credentials.same_server(found.server, entry.server):
        raise AccessError("server", f"{found.server!r} is not the API server of credential "
                                    f"{found.credentials!r} ({entry.server}); leave server out or give that one")
