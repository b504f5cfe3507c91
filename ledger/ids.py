"""Ids for events the service creates: UUID version 7 (RFC 9562), ordered by time.

A random (version 4) id lands on a random leaf of the unique index on ``events.id``. Once that index
outgrows memory, every append reads and dirties a random page, and after each checkpoint writes the
whole page to the WAL again; appends slow down as the log grows. A version 7 id starts with the Unix
time in milliseconds, so new ids go to the right-hand edge of the index, as positions do (Marten's
sequential Guids exist for the same reason). Clients may still send ids of any version.

Python 3.14's ``uuid.uuid7`` makes one id per call; here one system call serves a whole request.
"""

from __future__ import annotations

import os
import time
from typing import Final
from uuid import UUID

# Layout from the most significant bit: 48 bits of milliseconds, 4 of version (0111), 12 random,
# 2 of variant (10), 62 random.
_RANDOM_BITS: Final = 80
_VERSION: Final = 0x7 << 76
_VERSION_MASK: Final = 0xF << 76
_VARIANT: Final = 0x2 << 62
_VARIANT_MASK: Final = 0x3 << 62


def generate(count: int) -> list[UUID]:
    """``count`` fresh version 7 ids for this millisecond."""
    prefix = (time.time_ns() // 1_000_000) << _RANDOM_BITS
    entropy = os.urandom(10 * count)
    ids = []
    for i in range(count):
        value = prefix | int.from_bytes(entropy[10 * i:10 * i + 10])
        ids.append(UUID(int=(value & ~_VERSION_MASK & ~_VARIANT_MASK) | _VERSION | _VARIANT))
    return ids


def new() -> UUID:
    return generate(1)[0]
