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
``json.dumps`` above except in how floats with an exponent are written; such documents fall back to
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
# A cheap C-speed prefilter for _UNUSUAL_NUMBER: with every digit mapped to 0, each of its matches
# contains one of these; most texts contain none and skip the regex.
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")


def _maybe_unusual(text: bytes) -> bool:
    folded = text.translate(_DIGITS_TO_ZERO)
    hinted = b"0e" in folded or b"0E" in folded or b"0.0000" in folded or b"-0.0" in folded
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


def normalize(data: Any) -> tuple[Any, str, bool]:
    """``data`` as it will read back from jsonb, its JSON text for storing, and whether that text
    is plain (no float written with an exponent), which lets ``canonical`` skip its own scan."""
    text = msgspec.json.encode(data)
    if not _maybe_unusual(text):
        return data, text.decode(), True
    data = _normalize_value(data)
    text = msgspec.json.encode(data)
    return data, text.decode(), not _EXPONENT.search(text)


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
    plain: bool = False,
) -> bytes:
    """The canonical bytes; ``plain`` promises data and metadata hold no float with an exponent."""
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
    if not plain and _EXPONENT.search(fast):
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return fast


def chain(prev_hash: str, canonical_bytes: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes).hexdigest()


def chain_raw(prev_digest: bytes, canonical_bytes: bytes) -> bytes:
    """``chain`` on raw digests, for loops that hash many events in a row."""
    return hashlib.sha256(prev_digest + canonical_bytes).digest()
