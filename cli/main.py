"""Entry point of the ``ledger`` command; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import applier as applier_cli
from cli import client as client_cli
from cli import demo as demo_cli
from cli import export as export_cli
from cli import rebuild as rebuild_cli
from cli import serve
from cli import tokens as tokens_cli
from cli import verify as verify_cli
from ledger import settings as settings_mod

MODULES = [serve, export_cli, verify_cli]
MODULES.append(applier_cli)
MODULES.append(demo_cli)
MODULES.extend([client_cli, tokens_cli, rebuild_cli])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ledger", description="Deployment Ledger")
    sub = top.add_subparsers(dest="command", required=True)
    for module in MODULES:
        module.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except settings_mod.SettingsError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
