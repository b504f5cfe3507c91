"""The shape of a rollout strategy, as a revision carries it and the log records it.

A strategy splits a revision's targets into waves (by selector, by size, or "the rest"), with a soak
time between waves, a failure budget per wave, waves that wait for an approver, and what happens on
failure (halt, or roll back to the last revision that completed healthy). These are the types only,
with the bounds msgspec checks on decoding (so ``$.path`` names the field); what needs the fleet or
the selector grammar (membership, selectors, names that must exist) is checked in
projections/strategies.py. They live in the ledger layer because the event catalogue records them.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

INT32_MAX: Final = 2**31 - 1
WaveName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
# A count of targets, or a percentage of the revision's matched targets ("25%", rounded up).
Size = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)] | Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,3}%$")]
MAX_WAVES: Final = 50
MAX_SOAK_SECONDS: Final = 30 * 24 * 3600


class _Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class WaveSpec(_Base, frozen=True):
    """One wave: ``selector`` narrows the revision's targets, ``size`` takes that many of them (in
    the documented order); neither means every target not taken by an earlier wave."""

    name: WaveName
    selector: str | None = None
    size: Size | None = None
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)] | None = None


class Strategy(_Base, frozen=True):
    waves: Annotated[list[WaveSpec], msgspec.Meta(min_length=1, max_length=MAX_WAVES)]
    soak_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_SOAK_SECONDS)] = 0
    max_failures: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)] = 0
    approval: list[WaveName] = []
    on_failure: Literal["halt", "rollback"] = "halt"


class WaveMembers(_Base, frozen=True):
    """Who is in a wave, decided at submission and recorded in the revision's event."""

    name: str
    targets: list[str] = []
