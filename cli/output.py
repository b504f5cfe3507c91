"""How a command prints what it got: a table for people, the API's JSON or YAML for scripts.

Decisions:

- One flag, ``--output table|json|yaml``, on every client command (tests/test_cli_output.py walks
  the parser and holds every one to it, and checks that its JSON parses). ``--json`` stays as the
  shorthand of ``--output json`` that scripts already use.
- ``json`` and ``yaml`` print the API's answer unchanged (the same keys, in the same order), so a
  script reads the same document whichever it asks for; only ``table`` is shaped for people.
- YAML is PyYAML's ``safe_dump``: plain data, block style, no Python tags, keys in the API's order.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, Final

import yaml

FORMATS: Final = ("table", "json", "yaml")


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument("--output", choices=FORMATS, default="table",
                           help="table for people; json or yaml: the API's answer unchanged, for scripts")
    exclusive.add_argument("--json", dest="output", action="store_const", const="json",
                           help="the same as --output json")


def structured(args: argparse.Namespace) -> bool:
    """Whether the command prints the API's answer as data rather than for people."""
    return bool(args.output != "table")


def dumps(fmt: str, body: Any) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")
    return json.dumps(body, indent=2)


def show(args: argparse.Namespace, body: Any, render: Callable[[Any], str]) -> None:
    print(dumps(args.output, body) if structured(args) else render(body))
