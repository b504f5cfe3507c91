"""A stored event as a CloudEvents 1.0 JSON event: shared by the feed, the live stream and export.

Mapping: ``id`` the event id, ``source`` the ledger's URI (settings.source_uri), ``type``
``dev.ledger.<EventType>``, ``subject`` the stream, ``time`` recorded_at, ``data`` the stored JSON
text passed through unchanged (msgspec.Raw, never decoded and re-encoded). Extension attributes
(lower-case alphanumeric, as CloudEvents requires): ``position``, ``streamversion``, ``hash``,
``prevhash``, and from the metadata, when present: ``actor``, ``reason``, ``correlationid``,
``causationid``, ``requestid``, ``client``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec

from ledger import exporter, records

TYPE_PREFIX: Final = "dev.ledger."
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"


class CloudEvent(msgspec.Struct, omit_defaults=True):
    specversion: str
    id: uuid.UUID
    source: str
    type: str
    subject: str
    time: str
    datacontenttype: str
    data: msgspec.Raw
    position: int
    streamversion: int
    hash: str
    prevhash: str
    actor: str | None = None
    reason: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    requestid: str | None = None
    client: str | None = None


class _Metadata(msgspec.Struct):
    actor: Any = None
    reason: Any = None
    correlation_id: Any = None
    causation_id: Any = None
    request_id: Any = None
    client: Any = None


_metadata: Final = msgspec.json.Decoder(_Metadata)
_encoder: Final = msgspec.json.Encoder()
_EMPTY: Final = _Metadata()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def convert(event: records.RecordedEvent, source: str) -> CloudEvent:
    meta = _metadata.decode(event.metadata) if event.metadata != "{}" else _EMPTY
    return CloudEvent(
        specversion="1.0",
        id=event.id,
        source=source,
        type=TYPE_PREFIX + event.type,
        subject=event.stream,
        time=exporter.time_text(event.recorded_at),
        datacontenttype="application/json",
        data=msgspec.Raw(event.data.encode()),
        position=event.position,
        streamversion=event.version,
        hash=event.hash,
        prevhash=event.prev_hash,
        actor=_text(meta.actor),
        reason=_text(meta.reason),
        correlationid=_text(meta.correlation_id),
        causationid=_text(meta.causation_id),
        requestid=_text(meta.request_id),
        client=_text(meta.client),
    )


def encode(event: records.RecordedEvent, source: str) -> bytes:
    return _encoder.encode(convert(event, source))


def encode_batch(events: list[records.RecordedEvent], source: str) -> bytes:
    return _encoder.encode([convert(e, source) for e in events])
