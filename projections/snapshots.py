"""Fleet snapshots: the folded state at a position, stored so replay need not start from zero.

A snapshot is the whole ``fleet.Fleet`` as MessagePack (the structs are array-like, so field names
are not repeated per row), compressed with zlib at level 1: manifests dominate the size and compress
well, and level 1 keeps a snapshot of a big fleet well under a second to write. The projector takes
one every ``EVERY`` events inside its checkpoint transaction; replay loads the nearest one at or
below the position asked for. Rows of another ``tables.FORMAT`` are ignored, never misread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib
from typing import Final

import asyncpg
import msgspec

from projections import compact, fleet, tables

EVERY: Final = 25_000

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(fleet.Fleet)


def pack(state: fleet.Fleet) -> bytes:
    """The uncompressed encoding; cheap enough to take between two events."""
    return _encoder.encode(state)


def compress(packed: bytes) -> bytes:
    """zlib releases the GIL, so callers may run this in a thread while folding goes on."""
    return zlib.compress(packed, 1)


def encode(state: fleet.Fleet) -> bytes:
    return compress(pack(state))


def decode(data: bytes) -> fleet.Fleet:
    found = _decoder.decode(zlib.decompress(data))
    compact.targets(found.targets.values())
    return found


def due(last: int, position: int, every: int = EVERY) -> bool:
    """Whether folding from ``last`` to ``position`` crossed a multiple of ``every``."""
    return position // every > last // every


async def save(conn: asyncpg.Connection, position: int, recorded_at: dt.datetime | None, data: bytes) -> None:
    """Store an encoded snapshot taken at ``position``."""
    await conn.execute(
        "INSERT INTO fleet_snapshots (position, format, recorded_at, data) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (position) DO UPDATE SET format = EXCLUDED.format, data = EXCLUDED.data,"
        " recorded_at = EXCLUDED.recorded_at",
        position, tables.FORMAT, recorded_at, data)


async def nearest(conn: asyncpg.Connection, position: int) -> fleet.Fleet | None:
    """The latest snapshot at or below ``position``, or None."""
    data = await conn.fetchval(
        "SELECT data FROM fleet_snapshots WHERE format = $1 AND position <= $2"
        " ORDER BY position DESC LIMIT 1", tables.FORMAT, position)
    # Decompressed and decoded in a worker thread: a snapshot of a large fleet takes milliseconds.
    return await asyncio.to_thread(decode, data) if data is not None else None
