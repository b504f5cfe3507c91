"""The hash chain: every event's hash covers its predecessor's hash and its own canonical encoding.

Canonical encoding (documented in docs/guarantees.md so other tools can verify independently):
the UTF-8 bytes of the JSON object with exactly the keys ``data``, ``id``, ``metadata``,
``position``, ``recorded_at``, ``stream``, ``type``, ``version``; keys sorted at every depth, no
insignificant whitespace, non-ASCII characters unescaped; ``id`` as lower-case hyphenated UUID;
``recorded_at`` as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. That is exactly Python's
``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

``hash = sha256(bytes.fromhex(prev_hash) + canonical)``, hex encoded; the first event's prev_hash is
64 zeros.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Final
from uuid import UUID

GENESIS: Final = "0" * 64


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    *,
    position: int,
    stream: str,
    version: int,
    id: UUID | str,
    type: str,
    data: Any,
    metadata: Any,
    recorded_at: dt.datetime | str,
) -> bytes:
    doc = {
        "data": data,
        "id": str(id),
        "metadata": metadata,
        "position": position,
        "recorded_at": recorded_at if isinstance(recorded_at, str) else format_time(recorded_at),
        "stream": stream,
        "type": type,
        "version": version,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain(prev_hash: str, canonical_bytes: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes).hexdigest()
