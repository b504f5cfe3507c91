"""The applier's checkpoint: its folded state saved at a position, loaded at start.

Convergence never depends on the checkpoint — the applier compares desired state with recorded
outcomes, level-triggered like a Kubernetes controller — so a checkpoint that is old, missing or
of another format only costs folding more of the log. That is also why any applier process may
save it: the state at position N is the same whoever folded it; saves only move forward.

``FORMAT`` changes whenever the shape of the state does (it hashes the msgspec schema of
tracking.State, which includes fleet.Fleet) or when ``VERSION`` is bumped for a change in what the
folds mean; a row of another format is ignored, never misread.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from typing import Final

import asyncpg
import msgspec

from handlers import tracking
from projections import compact

NAME: Final = "applier"
VERSION: Final = 1
FORMAT: Final = f"{VERSION}-" + hashlib.sha256(
    msgspec.json.encode(msgspec.json.schema(tracking.State))).hexdigest()[:16]

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(tracking.State)


def pack(state: tracking.State) -> bytes:
    """The uncompressed encoding: taken between two events, so it is consistent."""
    return _encoder.encode(state)


async def save(conn: asyncpg.Connection, position: int, packed: bytes, *, timeout: float) -> None:
    data = await asyncio.to_thread(zlib.compress, packed, 1)
    await conn.execute(
        "INSERT INTO applier_checkpoints (name, position, format, state) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, format = EXCLUDED.format,"
        " state = EXCLUDED.state, updated_at = now()"
        " WHERE applier_checkpoints.position < EXCLUDED.position"
        " OR applier_checkpoints.format <> EXCLUDED.format",
        NAME, position, FORMAT, data, timeout=timeout)


async def load(conn: asyncpg.Connection, *, timeout: float) -> tracking.State | None:
    row = await conn.fetchrow(
        "SELECT position, state FROM applier_checkpoints WHERE name = $1 AND format = $2",
        NAME, FORMAT, timeout=timeout)
    if row is None:
        return None
    try:
        state = _decoder.decode(await asyncio.to_thread(zlib.decompress, row["state"]))
    except (msgspec.DecodeError, msgspec.ValidationError, zlib.error):
        return None
    if state.position != row["position"]:
        return None
    compact.targets(state.fleet.targets.values())
    return state
