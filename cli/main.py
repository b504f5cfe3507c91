"""Entry point of the ``ledger`` command; each subcommand lives in its own module.

A user's mistake ends as one line on stderr and an exit code from cli/exits.py, never a traceback:
commands raise :class:`exits.Failure`, and the few library errors that mean "the environment is
not right" (settings, the embedded PostgreSQL, a closed pipe) are translated here.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Sequence

from cli import applier as applier_cli
from cli import client as client_cli
from cli import demo as demo_cli
from cli import exits, http, parsers, serve
from cli import export as export_cli
from cli import freezes as freezes_cli
from cli import rebuild as rebuild_cli
from cli import targets as targets_cli
from cli import tokens as tokens_cli
from cli import verify as verify_cli
from ledger import pgembed
from ledger import settings as settings_mod

MODULES = [serve, applier_cli, demo_cli, targets_cli, client_cli, tokens_cli, freezes_cli, export_cli, verify_cli,
           rebuild_cli]


def version() -> str:
    try:
        return importlib.metadata.version("deployment-ledger")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> parsers.Parser:
    top = parsers.top(
        "ledger",
        "Deployment Ledger: an event-sourced deployment ledger for Kubernetes fleets.\n"
        "Client commands reach the service at --url, else $LEDGER_URL, else http://127.0.0.1:8080,\n"
        "with the token --token, else $LEDGER_TOKEN, else (a local service) .ledger/admin.token.\n"
        "Exit codes: 0 ok, 1 failed or condition not met, 2 usage, 3 unreachable, 4 not found,\n"
        "5 conflict, 6 not allowed (docs/cli.md).",
        ["ledger serve", "ledger targets add eu-1 --server https://eu-1.example:6443 -l region=eu",
         "ledger deploy web -f web.yaml --selector region=eu -m 'nginx 1.27'",
         "ledger status web", "ledger <command> --help"])
    top.add_argument("--version", action="version", version=f"ledger {version()}")
    sub = parsers.subcommands(top, "command")
    for module in MODULES:
        module.register(sub)
    return top


def _fail(code: int, message: str) -> int:
    print(f"ledger: {http.one_line(message)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except exits.Failure as exc:
        return _fail(exc.code, exc.message)
    except settings_mod.SettingsError as exc:
        return _fail(exits.Code.USAGE, str(exc))
    except pgembed.EmbeddedPostgresError as exc:
        return _fail(exits.Code.FAILED, f"embedded PostgreSQL: {(str(exc).splitlines() or [''])[0]}")
    except BrokenPipeError:
        # The reader went away (``ledger export | head``): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.Code.FAILED
    except KeyboardInterrupt:
        return exits.Code.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
