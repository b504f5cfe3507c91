"""How the applier reaches a target: a client built from the operator's credential, and nothing else.

A target names a credential (``credentials: eu-1``); the operator's credentials file
(ledger.credentials) says which API server that credential belongs to and where its secret lives.
The client for a target is made **only from that entry**: its server, its CA, its token or its
kubeconfig context. No target field is ever a host, a path or a TLS policy, so a caller who
registers a target cannot send a credential anywhere but to its own cluster, cannot make the
applier read a file, and cannot pick another context of a kubeconfig.

Decisions:

- :func:`credential_for` runs the registration check (ledger.access.check) again against the
  catalogue in use: a target recorded before named credentials (``credentials_ref``, ``ca_ref``,
  ``context``, ``insecure`` in its events), or one that names a credential the operator has since
  removed, or a server other than its credential's, fails permanently with a message telling the
  operator what to do. A change of the credentials file retries it (the applier listens).
- Token files are re-read whenever their modification time changes (rotated service-account tokens
  in projected volumes work without a restart). A kubeconfig is loaded for the entry's context only;
  if that context now reaches another server than when the file was loaded, the attempt waits
  (temporary) for the reload instead of following it.
- Errors name the credential, never a secret: a file that cannot be read is temporary (mounted
  secrets appear and rotate on their own); what only the operator can fix is permanent.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

from handlers import errors
from ledger import access, credentials
from projections import fleet


def credential_for(target: fleet.Target, catalogue: credentials.Catalogue) -> credentials.Credential:
    """The operator's credential ``target`` is reached with; raises errors.PermanentError."""
    try:
        access.check(target.access, catalogue)
    except access.AccessError as exc:
        raise errors.PermanentError(
            f"target {target.name} cannot be reached: {exc}. The operator lists the cluster in the "
            "credentials file (LEDGER_CREDENTIALS) and updates the target with credentials: NAME") from None
    assert target.access.credentials is not None
    return catalogue[target.access.credentials]


class _TokenFile:
    """A refresh hook that re-reads the token file when it changes."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._mtime: float | None = None

    def read(self, cfg: Configuration) -> None:
        try:
            stat = self.path.stat()
            if stat.st_mtime == self._mtime:
                return
            token = self.path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise errors.TemporaryError(f"cannot read the token file of credential {self.name}: {reason}") from None
        if not token:
            raise errors.TemporaryError(f"the token file of credential {self.name} is empty")
        cfg.api_key["BearerToken"] = token
        cfg.api_key_prefix["BearerToken"] = "Bearer"
        self._mtime = stat.st_mtime

    def __call__(self, cfg: Configuration) -> None:
        self.read(cfg)


async def _kubeconfig(entry: credentials.Credential, cfg: Configuration) -> None:
    assert entry.kubeconfig is not None
    try:
        await kube_config.load_kube_config(
            config_file=str(entry.kubeconfig), context=entry.context, client_configuration=cfg,
            persist_config=False)
    except OSError as exc:
        raise errors.TemporaryError(f"cannot read the kubeconfig of credential {entry.name}: "
                                    f"{exc.strerror or type(exc).__name__}") from None
    except (kube_config.ConfigException, TypeError, ValueError, KeyError, AttributeError) as exc:
        # The file changed since it was loaded (the reload reports what is wrong with it).
        raise errors.TemporaryError(f"the kubeconfig of credential {entry.name} cannot be used now "
                                    f"({type(exc).__name__}); waiting for the credentials file to be fixed") from None
    if not credentials.same_server(str(cfg.host), entry.server):
        raise errors.TemporaryError(f"the kubeconfig context of credential {entry.name} now reaches another "
                                    "server than when the credentials file was loaded; waiting for the reload")


async def configuration(entry: credentials.Credential) -> Configuration:
    """A kubernetes-asyncio Configuration made from ``entry`` alone; raises errors.ApplyError."""
    cfg = Configuration()
    if entry.kubeconfig is not None:
        await _kubeconfig(entry, cfg)
    elif entry.token_file is not None:
        hook = _TokenFile(entry.name, entry.token_file)
        hook.read(cfg)
        cfg.refresh_api_key_hook = hook
    cfg.host = entry.server
    if entry.insecure:
        cfg.verify_ssl = False
        cfg.ssl_ca_cert = None
    elif entry.ca_file is not None:
        if not os.access(entry.ca_file, os.R_OK):
            raise errors.TemporaryError(f"cannot read the CA bundle of credential {entry.name}")
        cfg.ssl_ca_cert = str(entry.ca_file)
    return cfg
