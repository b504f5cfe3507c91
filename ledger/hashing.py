"""The hash chain: every event's hash covers its predecessor's hash and its own canonical encoding.

Canonical encoding (documented in docs/guarantees.md so other tools can verify independently):
the UTF-8 bytes of the JSON object with exactly the keys ``data``, ``id``, ``metadata``,
``position``, ``recorded_at``, ``stream``, ``type``, ``version``; keys sorted at every depth, no
insignificant whitespace, non-ASCII characters unescaped; ``id`` as lower-case hyphenated UUID;
``recorded_at`` as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. That is exactly Python's
``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

``hash = sha256(bytes.fromhex(prev_hash) + canonical)``, hex encoded; the first event's prev_hash is
64 zeros.

Numbers must survive PostgreSQL's jsonb unchanged, or a verifier reading the rows back would encode
them differently: jsonb prints 1e16 as 10000000000000000 (an integer) and -0.0 as 0.0. So before an
event is stored, ``normalize`` turns floats of magnitude 1e16 or more into integers (they are whole
numbers anyway) and -0.0 into 0.0. The encoding itself is done by msgspec, whose output equals
``json.dumps`` above except in how floats with an exponent are written; such values fall back to
``json.dumps`` so the bytes are always the documented ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Any, Final
from uuid import UUID

import msgspec

GENESIS: Final = "0" * 64
# A number token (after ':', ',' or '[') that Python's json writes with an exponent: msgspec writes
# some of those with one too, and those below 1e-4 as 0.0000…; plus negative zero. Inside a string
# a match only causes a harmless detour.
_EXPONENT: Final = re.compile(rb"[:,\[]-?(?:[0-9]+(?:\.[0-9]+)?[eE]|0\.0000)")
_UNUSUAL_NUMBER: Final = re.compile(rb"[:,\[]-?(?:[0-9]+(?:\.[0-9]+)?[eE]|0\.0000)|[:,\[]-0\.0(?![0-9])")
_encoder: Final = msgspec.json.Encoder(order="sorted")
# A cheap C-speed prefilter for _UNUSUAL_NUMBER: each of its matches contains a '.' or a digit right
# before an 'e' or 'E' (a "0e" once digits fold to 0 and E to e); most texts have neither and skip
# the regex.
_FOLD: Final = bytes.maketrans(b"123456789E", b"000000000e")


def _maybe_unusual(text: bytes) -> bool:
    hinted = b"." in text or b"0e" in text.translate(_FOLD)
    return hinted and _UNUSUAL_NUMBER.search(text) is not None


def _normalize_value(value: Any) -> Any:
    if isinstance(value, float):
        if value == 0.0:
            return 0.0
        if math.isfinite(value) and abs(value) >= 1e16:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _normalize_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize_value(v) for v in value]
    return value


def normalize(data: Any) -> tuple[Any, str, bytes]:
    """``data`` as it will read back from jsonb, its JSON text for storing and its canonical bytes.

    The text is written with sorted keys, so for the usual document (no float that Python writes with
    an exponent) the stored text and the canonical bytes are the same and nothing is encoded twice.
    """
    text = _encoder.encode(data)
    if not _maybe_unusual(text):
        return data, text.decode(), text
    data = _normalize_value(data)
    text = _encoder.encode(data)
    if _EXPONENT.search(text):
        return data, text.decode(), _dumps(data)
    return data, text.decode(), text


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def format_time(moment: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (isoformat is several times faster than strftime)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
    """The canonical bytes of one stored event (what verifiers recompute)."""
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
    fast = _encoder.encode(doc)
    if _EXPONENT.search(fast):
        return _dumps(doc)
    return fast


# The writer assembles the same bytes from parts, so the JSON of ``data`` and ``metadata`` is encoded
# once, by the caller's task, before the batch is planned: keys sorted, the document's key order is
#   data, id, metadata, position, recorded_at, stream, type, version
# and only position, recorded_at and version depend on where the event lands in the log.


def canonical_head(data: bytes, id: UUID, metadata: bytes) -> bytes:
    """The canonical bytes up to the position: ``data`` and ``metadata`` as ``normalize`` gives them."""
    return b'{"data":%b,"id":"%b","metadata":%b,"position":' % (data, str(id).encode(), metadata)


def canonical_middle(recorded_at: str, stream: str) -> bytes:
    """The bytes between the position and the type, shared by one request's events in a batch."""
    return b',"recorded_at":"%b","stream":%b,"type":' % (recorded_at.encode(), _encoder.encode(stream))


def json_string(text: str) -> bytes:
    known = _JSON_STRINGS.get(text)
    if known is None:
        known = _encoder.encode(text)
        if len(_JSON_STRINGS) < 256:  # event type names: a few dozen at most
            _JSON_STRINGS[text] = known
    return known


_JSON_STRINGS: dict[str, bytes] = {}


def canonical_join(head: bytes, position: int, middle: bytes, type_json: bytes, version: int) -> bytes:
    """``canonical`` from the parts above; equal to it byte for byte (property-tested)."""
    return b'%b%d%b%b,"version":%d}' % (head, position, middle, type_json, version)


def chain(prev_hash: str, canonical_bytes: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes).hexdigest()


def chain_raw(prev_digest: bytes, canonical_bytes: bytes) -> bytes:
    """``chain`` on raw digests, for loops that hash many events in a row."""
    return hashlib.sha256(prev_digest + canonical_bytes).digest()
