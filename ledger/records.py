"""What callers hand to the store and what it hands back."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, TypeAlias
from uuid import UUID

import msgspec

ExpectedVersion: TypeAlias = Literal["any", "no_stream", "exists"] | int


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event to append. A Struct, not a dataclass: built once per submitted event, on the hot path."""

    id: UUID
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = {}


class AppendRequest(msgspec.Struct, frozen=True, gc=False):
    stream: str
    expected: ExpectedVersion
    events: tuple[NewEvent, ...]


class AppendResult(msgspec.Struct, frozen=True, gc=False):
    stream: str
    positions: tuple[int, ...]
    first_version: int
    last_version: int
    duplicate: bool = False


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """One stored event. ``data`` and ``metadata`` are the JSON text PostgreSQL returned."""

    position: int
    stream: str
    version: int
    id: UUID
    type: str
    data: str
    metadata: str
    recorded_at: dt.datetime
    prev_hash: str
    hash: str

    def data_obj(self) -> Any:
        return json.loads(self.data)

    def metadata_obj(self) -> Any:
        return json.loads(self.metadata)


COLUMNS = "position, stream, version, id, type, data::text, metadata::text, recorded_at, prev_hash, hash"


def from_row(row: Any) -> RecordedEvent:
    return RecordedEvent(*row)
