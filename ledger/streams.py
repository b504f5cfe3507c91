"""Stream names: ``<category>-<id>`` with a lower-case DNS-1123 label as the id, and who writes each
category.

The category is everything before the first hyphen; it is what the global log filters on.
``WRITERS`` is the one table of who may append to a category: ``clients`` (through the API, every
event decided by the rules in projections/rules.py) or ``ledger`` (the ledger's own processes, such
as the applier recording outcomes; the API refuses client appends with 403). A category that is not
in the table is not a stream name at all (422). A new ledger-written category (tokens, freezes)
joins by adding a line.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Writer = Literal["clients", "ledger"]
WRITERS: Final[dict[str, Writer]] = {
    "target": "clients",
    "deployment": "clients",
    "rollout": "ledger",  # the applier's outcomes
    "token": "ledger",  # written through /v1/tokens (api/tokens.py), never appended by a client
    "freeze": "ledger",  # written through /v1/freezes (api/freezes.py)
}
CATEGORIES: Final = frozenset(WRITERS)
_ID: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_STREAM: Final = re.compile(r"([a-z][a-z0-9]{0,31})-(.+)")


class StreamNameError(ValueError):
    """A stream name or id that breaks the naming rule; the message says which part and why."""


def validate_id(value: str, what: str = "name") -> str:
    if not _ID.fullmatch(value):
        raise StreamNameError(
            f"{what} {value!r} must be a lower-case DNS-1123 label: at most 63 characters of "
            "a-z, 0-9 and '-', starting and ending with a letter or digit"
        )
    return value


def validate(stream: str) -> str:
    match = _STREAM.fullmatch(stream)
    if match is None:
        raise StreamNameError(
            f"stream {stream!r} must be <category>-<id>, e.g. deployment-web or target-eu-1"
        )
    category, ident = match.groups()
    if category not in CATEGORIES:
        raise StreamNameError(
            f"stream {stream!r} has unknown category {category!r}; known: {', '.join(sorted(CATEGORIES))}"
        )
    validate_id(ident, "stream id")
    return stream


def written_by_ledger(stream: str) -> bool:
    """Whether only the ledger itself appends to ``stream`` (a valid name)."""
    return WRITERS[category_of(stream)] == "ledger"


def category_of(stream: str) -> str:
    return stream.split("-", 1)[0]


def id_of(stream: str) -> str:
    return stream.split("-", 1)[1]


def name(category: str, ident: str) -> str:
    return f"{category}-{ident}"
