"""The operator's credentials file, parsed: which credential reaches which API server, and how.

The file (``LEDGER_CREDENTIALS``, YAML) belongs to the operator, never to the API's callers:

```yaml
credentials:
  eu-1:
    server: https://eu-1.example:6443      # the only host this credential is ever sent to
    token_file: /var/run/secrets/ledger/eu-1/token
    ca_file: /etc/ledger/ca/eu-1.pem
  us-1:
    kubeconfig: /etc/ledger/kubeconfig      # server taken from the context's cluster
    context: us-1
  emulator:
    server: http://127.0.0.1:8081/clusters/eu-1
    anonymous: true                         # no secret at all, said explicitly
```

Each entry is exactly one of ``token_file``, ``kubeconfig`` (with ``context``, else the
kubeconfig's current-context) or ``anonymous: true``. ``ca_file`` is a PEM bundle; ``insecure:
true`` turns TLS verification off, explicitly. Relative paths are relative to the file's directory.

Everything here is pure: the loader (ledger.credfile) reads the files and hands the decoded
documents in. A kubeconfig is resolved when the file is loaded, not when a cluster is contacted: its
server becomes the credential's, so "which host may receive this secret" is known before any target
names it, and a kubeconfig that is not a mapping, lacks the context or names no server is an error
of the credentials file (naming the field), never a crash of the applier. Token and CA files are
only read when a client is made: mounted secrets appear and rotate on their own.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

_AT: Final = re.compile(r" - at `\$([^`]*)`$")
_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?")


class CredentialsFileError(ValueError):
    """The credentials file (or a kubeconfig it names) cannot be used; ``field`` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One entry as the operator writes it."""

    server: str | None = None
    token_file: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    anonymous: bool = False


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """One entry resolved: its server is known, paths are absolute. Equal entries reach a cluster
    the same way, so the applier keeps a target's client while its entry stays equal."""

    name: str
    server: str
    token_file: Path | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    ca_file: Path | None = None
    insecure: bool = False

    @property
    def anonymous(self) -> bool:
        return self.token_file is None and self.kubeconfig is None



def server_problem(url: str) -> str | None:
    """Why ``url`` is not an acceptable API server URL, or None when it is. The reason never quotes
    the URL: one with user information may carry a password."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http"):
        return "must be an https:// (or http://) URL"
    if not parts.hostname:
        return "names no host"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not carry user information (user@host)"
    if parts.query or url.rstrip("/").endswith("?"):
        return "must not carry a query string"
    if parts.fragment or "#" in url:
        return "must not carry a fragment"
    if port == 0:
        return "names port 0"
    return None


def normal_server(url: str) -> str:
    """``url`` in the form two servers are compared in: scheme and host lower-case, default port
    spelled out, no trailing slash."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path.rstrip('/')}"


def same_server(a: str, b: str) -> bool:
    return normal_server(a) == normal_server(b)


Catalogue = Mapping[str, Credential]
EMPTY: Final[Catalogue] = {}


def _path(raw: str, base: Path, field: str) -> Path:
    if not raw.strip():
        raise CredentialsFileError(field, "is empty")
    path = Path(os.path.expanduser(raw.strip()))
    return path if path.is_absolute() else base / path


def entries(doc: Any, base: Path) -> dict[str, tuple[Entry, Path | None]]:
    """The file's entries, each with its kubeconfig's absolute path (None for the others)."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise CredentialsFileError("$", f"expected a mapping with a `credentials` key, got {type(doc).__name__}")
    unknown = sorted(str(k) for k in doc if k != "credentials")
    if unknown:
        raise CredentialsFileError(str(unknown[0]), "unknown key; the file holds `credentials` only")
    listed = doc.get("credentials") or {}
    if not isinstance(listed, dict):
        raise CredentialsFileError("credentials", f"expected a mapping of names to entries, got "
                                                  f"{type(listed).__name__}")
    found: dict[str, tuple[Entry, Path | None]] = {}
    for name, raw in listed.items():
        where = f"credentials.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise CredentialsFileError(where, "a credential's name is 1 to 63 lower-case letters, digits, "
                                              "'-', '.' or '_', starting and ending alphanumeric")
        try:
            entry = msgspec.convert(raw, Entry, strict=True)
        except msgspec.ValidationError as exc:
            message = str(exc)
            at = _AT.search(message)
            field = where + at.group(1) if at else where
            raise CredentialsFileError(field, message[:at.start()] if at else message) from None
        kinds = [k for k in ("token_file", "kubeconfig", "anonymous") if getattr(entry, k)]
        if len(kinds) != 1:
            raise CredentialsFileError(where, "give exactly one of token_file, kubeconfig or anonymous: true"
                                              + (f" (got {', '.join(kinds)})" if kinds else ""))
        if entry.context is not None and entry.kubeconfig is None:
            raise CredentialsFileError(f"{where}.context", "only a kubeconfig entry has a context")
        if entry.server is None and entry.kubeconfig is None:
            raise CredentialsFileError(f"{where}.server", "is required (the only host this credential is sent to)")
        if entry.server is not None:
            problem = server_problem(entry.server)
            if problem is not None:
                raise CredentialsFileError(f"{where}.server", f"the URL {problem}")
        for key in ("token_file", "ca_file", "kubeconfig"):
            value = getattr(entry, key)
            if value is not None:
                _path(value, base, f"{where}.{key}")
        kubeconfig = _path(entry.kubeconfig, base, f"{where}.kubeconfig") if entry.kubeconfig else None
        found[name] = (entry, kubeconfig)
    return found


def _named(items: Any, name: str, what: str, field: str) -> dict[str, Any]:
    if not isinstance(items, list):
        raise CredentialsFileError(field, f"the kubeconfig's `{what}s` is not a list")
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            inner = item.get(what)
            if not isinstance(inner, dict):
                raise CredentialsFileError(field, f"the kubeconfig's {what} {name!r} is not a mapping")
            return inner
    raise CredentialsFileError(field, f"the kubeconfig has no {what} named {name!r}")


def kubeconfig_server(doc: Any, context: str | None, field: str) -> tuple[str, str]:
    """(context, server) that ``context`` of the kubeconfig ``doc`` reaches."""
    if not isinstance(doc, dict):
        raise CredentialsFileError(field, f"the kubeconfig is not a mapping (got {type(doc).__name__})")
    chosen = context or doc.get("current-context")
    if not isinstance(chosen, str) or not chosen:
        raise CredentialsFileError(field, "names no context and the kubeconfig has no current-context")
    ctx = _named(doc.get("contexts"), chosen, "context", field)
    cluster = ctx.get("cluster")
    if not isinstance(cluster, str):
        raise CredentialsFileError(field, f"the kubeconfig's context {chosen!r} names no cluster")
    server = _named(doc.get("clusters"), cluster, "cluster", field).get("server")
    if not isinstance(server, str):
        raise CredentialsFileError(field, f"the kubeconfig's cluster {cluster!r} has no server")
    return chosen, server


def resolve(name: str, entry: Entry, base: Path, kubeconfig_doc: Any = None) -> Credential:
    """The entry with its server known (from the kubeconfig for a kubeconfig entry)."""
    where = f"credentials.{name}"
    context, server = entry.context, entry.server
    kubeconfig = _path(entry.kubeconfig, base, f"{where}.kubeconfig") if entry.kubeconfig else None
    if kubeconfig is not None:
        context, from_file = kubeconfig_server(kubeconfig_doc, entry.context, f"{where}.kubeconfig")
        problem = server_problem(from_file)
        if problem is not None:
            raise CredentialsFileError(f"{where}.kubeconfig", f"the server of context {context!r} {problem}")
        if server is not None and not same_server(server, from_file):
            raise CredentialsFileError(f"{where}.server", f"{server!r} differs from the server of the kubeconfig's "
                                                          f"context {context!r} ({from_file})")
        server = from_file
    assert server is not None
    return Credential(
        name=name, server=server.rstrip("/"),
        token_file=_path(entry.token_file, base, f"{where}.token_file") if entry.token_file else None,
        kubeconfig=kubeconfig, context=context,
        ca_file=_path(entry.ca_file, base, f"{where}.ca_file") if entry.ca_file else None,
        insecure=entry.insecure)
