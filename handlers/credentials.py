"""How to reach one target: its API server, credentials, CA bundle and TLS policy.

The log names cluster access by reference only (DESIGN: secrets never enter the event log); the
reference is resolved here, when a client is made, from files the applier's host provides.

``credentials_ref`` syntax (decided here, documented in docs/applier.md):

- unset or empty — no credentials (anonymous; for local emulators and test clusters).
- ``token-file:<path>`` — a bearer token read from ``<path>``. The file is re-read whenever its
  modification time changes, so rotated service-account tokens (projected volumes) are picked up
  without a restart. ``server`` must be set.
- ``kubeconfig:<path>`` — a kubeconfig file; the target's ``context`` picks the context (its
  current-context when unset). A ``server`` or ``ca_ref`` on the target overrides the
  kubeconfig's, so one kubeconfig can serve clusters reached through different addresses.

Paths may start with ``~``; relative paths are relative to the applier's working directory.
``ca_ref`` is the path of a PEM CA bundle; ``insecure: true`` turns TLS verification off (and wins
over ``ca_ref``) — explicit, never a fallback.

Errors: a malformed reference or a missing server is permanent (only a target update can fix it);
a file that cannot be read is temporary, because mounted secrets appear and rotate on their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

from handlers import errors
from projections import fleet

TOKEN_FILE: Final = "token-file:"
KUBECONFIG: Final = "kubeconfig:"


@dataclass(frozen=True, slots=True)
class Access:
    """The fields of a target that decide how it is reached; a change means a new client."""

    server: str | None = None
    context: str | None = None
    credentials_ref: str | None = None
    ca_ref: str | None = None
    insecure: bool = False


def access_of(target: fleet.Target) -> Access:
    return Access(target.server, target.context, target.credentials_ref, target.ca_ref, target.insecure)


def _path(raw: str) -> Path:
    return Path(os.path.expanduser(raw.strip()))


def parse(ref: str | None) -> tuple[str, Path | None]:
    """``("none", None)``, ``("token-file", path)`` or ``("kubeconfig", path)``."""
    if ref is None or not ref.strip():
        return "none", None
    for prefix in (TOKEN_FILE, KUBECONFIG):
        if ref.startswith(prefix):
            rest = ref[len(prefix):]
            if not rest.strip():
                raise errors.PermanentError(f"credentials_ref {ref!r} names no file")
            return prefix[:-1], _path(rest)
    raise errors.PermanentError(
        f"credentials_ref {ref!r} is not understood: use token-file:<path> or kubeconfig:<path>")


class _TokenFile:
    """A refresh hook that re-reads the token file when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None

    def read(self, cfg: Configuration) -> None:
        stat = self.path.stat()
        if stat.st_mtime == self._mtime:
            return
        token = self.path.read_text().strip()
        if not token:
            raise OSError(f"token file {self.path} is empty")
        cfg.api_key["BearerToken"] = token
        cfg.api_key_prefix["BearerToken"] = "Bearer"
        self._mtime = stat.st_mtime

    def __call__(self, cfg: Configuration) -> None:
        self.read(cfg)


async def configuration(access: Access) -> Configuration:
    """A kubernetes-asyncio Configuration for ``access``; raises errors.ApplyError."""
    kind, path = parse(access.credentials_ref)
    cfg = Configuration()
    try:
        if kind == "kubeconfig":
            assert path is not None
            await kube_config.load_kube_config(
                config_file=str(path), context=access.context, client_configuration=cfg,
                persist_config=False)
        elif kind == "token-file":
            assert path is not None
            hook = _TokenFile(path)
            hook.read(cfg)
            cfg.refresh_api_key_hook = hook
    except OSError as exc:
        raise errors.TemporaryError(f"cannot read credentials {access.credentials_ref}: {exc}") from exc
    except kube_config.ConfigException as exc:
        raise errors.PermanentError(f"kubeconfig {path}: {exc}") from exc
    if access.server:
        cfg.host = access.server.rstrip("/")
    if not access.server and kind != "kubeconfig":
        raise errors.PermanentError("the target names no API server (server is unset)")
    if access.insecure:
        cfg.verify_ssl = False
        cfg.ssl_ca_cert = None
    elif access.ca_ref:
        ca = _path(access.ca_ref)
        if not os.access(ca, os.R_OK):
            raise errors.TemporaryError(f"cannot read CA bundle {ca}")
        cfg.ssl_ca_cert = str(ca)
    return cfg
