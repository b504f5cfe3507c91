"""The flags commands share: how a client reaches the service, which database a database command
opens, and the service's settings (only on the commands that run the service).

Decisions:

- Every client command reaches the service the same way: ``--url``, else ``LEDGER_URL``, else
  http://127.0.0.1:8080, with the token cli/credentials.py finds (``--token``, ``LEDGER_TOKEN``,
  a local service's admin.token) (:func:`add_client_flags`, :func:`client_from`).
- Working on a database directly is explicit: ``--database-url`` or ``--data-dir`` on the commands
  that support it (:data:`DATABASE`); the environment's ``LEDGER_DATABASE_URL`` / ``LEDGER_DATA_DIR``
  serve only the commands that are database tools by nature (rebuild, import, db migrate).
- The service's settings (port, pool, projector/applier toggles, …) are flags of ``serve`` and
  ``applier`` only, generated from the Settings dataclass; other commands take the few they use.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from cli import credentials, exits, http
from ledger import logs, streams
from ledger import settings as settings_mod

DATABASE: Final = ("database_url", "data_dir")


def add_settings_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """Flags for the Settings fields ``names`` (all of them when None); defaults are Settings'."""
    wanted = set(names) if names is not None else None
    group = parser.add_argument_group("settings (also LEDGER_<NAME> environment variables)")
    for f in dataclasses.fields(settings_mod.Settings):
        if wanted is not None and f.name not in wanted:
            continue
        default = f.default if f.default is not None else "unset"
        group.add_argument("--" + f.name.replace("_", "-"), dest="setting_" + f.name, default=None,
                           metavar=f.name.upper(), help=f"{f.metadata.get('help')} (default: {default})")


def settings_from(args: argparse.Namespace) -> settings_mod.Settings:
    overrides: dict[str, Any] = {
        key[len("setting_"):]: value for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return settings_mod.load(os.environ, overrides)


def configure_logging(settings: settings_mod.Settings) -> None:
    """The process's logging, once, from its settings (ledger/logs.py): stderr, in the settings'
    format and level, with the operator's admin token among the secrets every line is scrubbed of."""
    logs.configure(settings.log_format, settings.log_level,
                   secrets=[settings.admin_token] if settings.admin_token else [])


def add_url_flag(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--url", default=None,
                        help=f"the ledger service (default: $LEDGER_URL, else {http.DEFAULT_URL})")


def add_token_flag(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--token", default=None,
                        help="access token (default: $LEDGER_TOKEN, preferable: a command line is visible to "
                             "other users; for a local service, <data dir>/admin.token)")


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("service")
    add_url_flag(group)
    add_token_flag(group)
    group.add_argument("--actor", default=None,
                       help="who you act for, recorded as on_behalf_of beside the token's name "
                            "(default: your login name)")


def add_database_flags(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--database-url", default=None, metavar="URL",
                        help="open this PostgreSQL database directly instead of asking the service")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="open the embedded PostgreSQL of the ledger kept under DIR (it must exist)")


def base_url(args: argparse.Namespace) -> str:
    return http.check_url(getattr(args, "url", None) or os.environ.get("LEDGER_URL") or http.DEFAULT_URL)


def client_from(args: argparse.Namespace) -> http.Client:
    """A client of the service, sending the token cli/credentials.py finds."""
    actor = getattr(args, "actor", None)
    if not actor:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = None
    url = base_url(args)
    return http.Client(url, actor=actor, default_headers=credentials.headers(getattr(args, "token", None), url))


def name(text: str) -> str:
    """An argparse type: a target or deployment name, checked before it goes into a URL."""
    try:
        return streams.validate_id(text)
    except streams.StreamNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_deployment_name(parser: argparse.ArgumentParser) -> None:
    """The positional deployment name every deployment command takes."""
    parser.add_argument("name", type=name, help="deployment name (a DNS-1123 label)")


def label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def require_dir(path: Path) -> Path:
    """A ledger data directory that already holds a database; never created by a reader."""
    if not (path / "pg" / "PG_VERSION").is_file():
        raise exits.Failure(exits.Code.NOT_FOUND, f"no ledger database under {path} (give the data "
                            "directory of an existing ledger, or --url to ask the service)")
    return path
