"""``ledger completion bash|zsh|fish``: the shell completion script, from argcomplete.

Completion is argcomplete's (a maintained library, pinned in pyproject.toml): the shell asks the
``ledger`` command itself for candidates, so the completions are always the parser's own commands,
flags and choices, never a list kept by hand. This command prints the activation script for a
shell; cli/main.py answers the shell's requests (``argcomplete.autocomplete``) before parsing.
Because the shell runs ``ledger`` on every Tab, building the parser must stay cheap: command
modules import the service only when they run (cli/main.py).
"""

from __future__ import annotations

import argparse
from typing import Final

from cli import parsers

SHELLS: Final = ("bash", "zsh", "fish")


def register(sub: parsers.Subparsers) -> None:
    cmd = parsers.command(
        sub, "completion", summary="print the shell completion script (bash, zsh or fish)",
        description="Print the script that makes the shell complete ledger's commands, flags and choices.\n"
                    "Load it in the shell's start-up file (docs/cli.md, \"Shell completion\").",
        example_lines=["ledger completion bash > ~/.local/share/bash-completion/completions/ledger",
                       "echo 'eval \"$(ledger completion zsh)\"' >> ~/.zshrc",
                       "ledger completion fish > ~/.config/fish/completions/ledger.fish"])
    cmd.add_argument("shell", choices=SHELLS, help="the shell to print the script for")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argcomplete import shell_integration

    print(shell_integration.shellcode(["ledger"], shell=args.shell), end="")
    return 0
