"""How a stored event looks on the wire. Stored JSON text is passed through, never re-encoded."""

from __future__ import annotations

from typing import Any

import msgspec

from ledger import hashing, records


def event(e: records.RecordedEvent) -> dict[str, Any]:
    return {
        "position": e.position,
        "stream": e.stream,
        "version": e.version,
        "id": str(e.id),
        "type": e.type,
        "data": msgspec.Raw(e.data.encode()),
        "metadata": msgspec.Raw(e.metadata.encode()),
        "recorded_at": hashing.format_time(e.recorded_at),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }
