"""How a read command prints what it got: a table for people, the API's JSON for scripts.

One place, so that more formats (``--output table|json|yaml``) are added here and every command
gets them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")


def show(args: argparse.Namespace, body: Any, render: Callable[[Any], str]) -> None:
    print(json.dumps(body, indent=2) if args.json else render(body))
