"""Files a command reads or writes for the user, with failures as one line naming the file.

A missing, unreadable or undecodable file, and YAML that does not parse, are the user's to fix
(exit 2), so they are reported as such before anything is sent to the service.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from cli import exits

STDIN = "-"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def read_text(name: str) -> str:
    """The file's text (``-``: standard input)."""
    try:
        if name == STDIN:
            return sys.stdin.read()
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot read {name}: {_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot read {name}: not UTF-8 text ({exc.reason} "
                            f"at byte {exc.start})") from exc


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot read {path}: {_reason(exc)}") from exc


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise exits.Failure(exits.Code.USAGE, f"cannot write {path}: {_reason(exc)}") from exc


def check_yaml(name: str, text: str) -> None:
    """Raise a one-line failure naming the line and column where ``text`` stops being YAML."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for _ in yaml.load_all(text, Loader=loader):
            pass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise exits.Failure(exits.Code.USAGE, f"{name}: invalid YAML{where}: {problem}") from exc
