"""The export file format: one JSON object per event and line, what ``ledger export`` writes and
``ledger import`` reads back (ledger/importer.py decodes with the same Struct).

Keys, in this order: ``position``, ``stream``, ``version``, ``id``, ``type``, ``data``,
``metadata``, ``recorded_at``, ``prev_hash``, ``hash``. ``data`` and ``metadata`` are the stored
JSON text passed through as it came from PostgreSQL (msgspec.Raw), never decoded and re-encoded,
so export, import and export again give identical bytes and every field the hash covers is on
the line (docs/export.md, docs/guarantees.md).

Timestamps are formatted through a small cache: the batching writer gives every event of one
transaction the same ``recorded_at``, and ``strftime`` would otherwise be the costliest step of
an export.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from typing import Final

import msgspec

from ledger import hashing, records


class Line(msgspec.Struct, forbid_unknown_fields=True):
    position: int
    stream: str
    version: int
    id: uuid.UUID
    type: str
    data: msgspec.Raw
    metadata: msgspec.Raw
    recorded_at: str
    prev_hash: str
    hash: str


_encoder: Final = msgspec.json.Encoder()


@functools.lru_cache(maxsize=256)
def time_text(moment: dt.datetime) -> str:
    return hashing.format_time(moment)


def line(event: records.RecordedEvent) -> Line:
    return Line(event.position, event.stream, event.version, event.id, event.type,
                msgspec.Raw(event.data.encode()), msgspec.Raw(event.metadata.encode()),
                time_text(event.recorded_at), event.prev_hash, event.hash)


def encode_lines(events: Sequence[records.RecordedEvent]) -> bytes:
    return _encoder.encode_lines([line(e) for e in events])
