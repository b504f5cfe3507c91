"""What the supervisor of a multi-process ``ledger serve`` tells each process it starts.

One JSON line on the child's stdin (never its command line, which other users can read: the
settings may hold the admin token, and the run's secret guards the status ports).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from ledger import settings as settings_mod

Role = Literal["api", "projector", "applier"]
ROLES: Final[tuple[Role, ...]] = ("api", "projector", "applier")


class Spec(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    settings: dict[str, Any]
    fd: int
    secret: str
    peers: dict[str, str] = {}


def encode_settings(settings: settings_mod.Settings) -> dict[str, Any]:
    """Settings as overrides that ``settings.load`` reads back to the same object."""
    return {f.name: str(value) if isinstance(value, Path) else value
            for f in dataclasses.fields(settings) if (value := getattr(settings, f.name)) is not None}


def line(spec: Spec) -> bytes:
    return msgspec.json.encode(spec) + b"\n"


def read(raw: bytes) -> tuple[Spec, settings_mod.Settings]:
    spec = msgspec.json.decode(raw, type=Spec)
    return spec, settings_mod.load({}, spec.settings)
