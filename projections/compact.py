"""Equal target labels and access kept once in a fleet (issue 16: the service's memory is bounded).

Why: the projector, the applier and every replay hold the whole fleet, and most targets of a fleet
share their labels (region, tier) and often their access. Each target kept the dictionary and the
access its event decoded to: 602 bytes per target registered with ``{"bench": "yes"}`` and one
credential, 233 bytes with equal ones shared (tests/test_compact.py; about 15 MB less in each of
those processes at 40,000 targets).

Decisions:

- **Shared values are never changed in place.** The fold replaces a target's labels and access,
  as it always has (they were the decoded event's own objects already); nothing mutates them.
- **Labels are equal when their items are, in order**: a client reads back the order it gave.
- **Decoded fleets too**: a snapshot (projections/snapshots.py) or the applier's checkpoint
  (handlers/checkpoint.py) decodes every target anew; ``targets`` shares theirs once loaded.
- **Bounded** (``functools.lru_cache``, ``LIMIT`` values of each kind): a fleet whose every target
  has labels of its own pays a few hundred KB for the table, never a copy per target.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final, Protocol

from ledger import access as access_mod

LIMIT: Final = 4096


@functools.lru_cache(maxsize=LIMIT)
def _labels(items: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(items)


@functools.lru_cache(maxsize=LIMIT)
def _access(found: access_mod.Access) -> access_mod.Access:
    return found


def labels(found: dict[str, str]) -> dict[str, str]:
    """The one dictionary kept for labels equal to ``found`` (with their order)."""
    return _labels(tuple(found.items()))


def access(found: access_mod.Access) -> access_mod.Access:
    """The one ``Access`` kept for accesses equal to ``found``."""
    return _access(found)


class _Target(Protocol):
    labels: dict[str, str]
    access: access_mod.Access


def targets(found: Iterable[_Target]) -> None:
    """Share the labels and access of targets decoded from a snapshot or a checkpoint."""
    for target in found:
        target.labels = labels(target.labels)
        target.access = access(target.access)
