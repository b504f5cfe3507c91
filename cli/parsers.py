"""How every ``ledger`` parser is built, so that each command's help reads alike and its mistakes
read alike.

Decisions:

- Every command (and command group) has a description, examples in its epilog, and shows the
  default of every option that has one. tests/test_cli_help.py walks the parser tree and holds
  each command to that, so a new command cannot ship without them.
- A usage error is one line on stderr and exit 2 (:data:`exits.Code.USAGE`), naming the command
  and pointing at its ``--help``, instead of argparse's usage block followed by the error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn, TypeAlias

from cli import exits

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(exits.Code.USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; ``(default: …)`` after every option that has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default: Any = action.default
        trivial = default is None or default is False or default is argparse.SUPPRESS or default == []
        if action.option_strings and not trivial and "default" not in text:
            text += " (default: %(default)s)"
        return text


def examples(lines: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def top(prog: str, description: str, example_lines: Sequence[str]) -> Parser:
    return Parser(prog=prog, description=description, epilog=examples(example_lines), formatter_class=Formatter)


def command(sub: Subparsers, name: str, *, summary: str, description: str,
            example_lines: Sequence[str]) -> argparse.ArgumentParser:
    """A subcommand: ``summary`` in its group's list, ``description`` and examples in its own help."""
    return sub.add_parser(name, help=summary, description=description, epilog=examples(example_lines),
                          formatter_class=Formatter)


def subcommands(parser: argparse.ArgumentParser, dest: str) -> Subparsers:
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", title="commands")
