"""Planning a batch: pure functions, no I/O.

What the writer does between taking requests off its queue and sending rows: the JSON of each event
encoded once (in the caller's task), then, for a batch and the head it follows, every request's
idempotency and expected-version check and every event's position, version and hash. The writer
(ledger/writer.py) supplies the head, the versions and the already-stored ids (from memory or from
the database) and the clock; this module only computes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from uuid import UUID

from ledger import errors, hashing, records

Head = tuple[int, str, dt.datetime]  # position, hash, recorded_at of the last event
EMPTY_LOG: Final[Head] = (0, hashing.GENESIS, dt.datetime(1970, 1, 1, tzinfo=dt.UTC))

# Per event, what the caller's task encodes before queueing: the canonical bytes up to the position,
# the type as JSON, and the data and metadata texts to store.
Encoded = tuple[bytes, bytes, str, str]


class Queued(Protocol):
    """A request as the writer queues it: the request and its events' encodings."""

    @property
    def request(self) -> records.AppendRequest: ...

    @property
    def encoded(self) -> list[Encoded]: ...


def encode(events: Sequence[records.NewEvent], metadata_seen: dict[int, tuple[Any, str, bytes]]) -> list[Encoded]:
    """The JSON of each event, encoded once, in the caller's task rather than the writer's."""
    encoded: list[Encoded] = []
    for event in events:
        _data, data_text, data_canonical = hashing.normalize(event.data)
        # Events of one request usually share one metadata object: encode it once.
        meta = metadata_seen.get(id(event.metadata))
        if meta is None:
            meta = metadata_seen[id(event.metadata)] = hashing.normalize(event.metadata)
        _meta, meta_text, meta_canonical = meta
        encoded.append((hashing.canonical_head(data_canonical, event.id, meta_canonical),
                        hashing.json_string(event.type), data_text, meta_text))
    return encoded


def check_expected(stream: str, expected: records.ExpectedVersion, actual: int) -> None:
    ok = (
        expected == "any"
        or (expected == "no_stream" and actual == 0)
        or (expected == "exists" and actual > 0)
        or (isinstance(expected, int) and expected == actual)
    )
    if not ok:
        raise errors.WrongExpectedVersion(stream, expected, actual)



@dataclass
class Plan:
    rows: list[tuple[Any, ...]]
    outcomes: list[records.AppendResult | BaseException]
    base: Head  # the head it was planned after
    head: Head  # the head once it is written
    versions: dict[str, int]

    def columns(self) -> list[list[Any]]:
        return [list(column) for column in zip(*self.rows, strict=True)]


def plan(
    batch: Sequence[Queued],
    head: Head,
    versions: dict[str, int],
    stored: dict[UUID, Any],
    now: dt.datetime,
) -> Plan:
    """Assign positions, versions and hashes after ``head``; each request gets its outcome.

    ``recorded_at`` is ``now``, or the head's time if the clock is behind it, so time never goes
    backwards along positions (``/v1/state?at=<time>`` relies on it)."""
    position, prev_hash, last_time = head
    prev_raw = bytes.fromhex(prev_hash)
    recorded_at = max(now, last_time)
    recorded_text = hashing.format_time(recorded_at)
    versions = dict(versions)
    rows: list[tuple[Any, ...]] = []
    in_batch: dict[UUID, tuple[int, str, int, str, Any]] = {}
    outcomes: list[records.AppendResult | BaseException] = []
    # Ids written earlier in this batch, for a later request that repeats them (only matters when
    # the batch holds more than one request).
    track = len(batch) > 1
    sha256 = hashlib.sha256
    join = hashing.canonical_join
    for pending in batch:
        req = pending.request
        try:
            duplicate = _duplicate(req, stored, in_batch)
            if duplicate is not None:
                outcomes.append(duplicate)
                continue
            actual = versions[req.stream]
            check_expected(req.stream, req.expected, actual)
        except errors.LedgerError as exc:
            outcomes.append(exc)
            continue
        first_position = position + 1
        middle = hashing.canonical_middle(recorded_text, req.stream)
        for event, (head_bytes, type_json, data_text, meta_text) in zip(req.events, pending.encoded, strict=True):
            position += 1
            actual += 1
            prev_raw = sha256(prev_raw + join(head_bytes, position, middle, type_json, actual)).digest()
            digest = prev_raw.hex()
            rows.append((position, req.stream, actual, event.id, event.type, data_text, meta_text,
                         recorded_at, prev_hash, digest))
            prev_hash = digest
            if track:
                in_batch[event.id] = (position, req.stream, actual, event.type, event.data)
        versions[req.stream] = actual
        outcomes.append(
            records.AppendResult(
                stream=req.stream,
                positions=tuple(range(first_position, position + 1)),
                first_version=actual - len(req.events) + 1,
                last_version=actual,
            )
        )
    new_head = (position, prev_hash, recorded_at) if rows else head
    return Plan(rows, outcomes, head, new_head, versions)


def _duplicate(
    req: records.AppendRequest,
    stored: dict[UUID, Any],
    in_batch: dict[UUID, tuple[int, str, int, str, Any]],
) -> records.AppendResult | None:
    """The original result when every event of ``req`` is already stored with the same content."""
    if len(req.events) > 1 and len({e.id for e in req.events}) != len(req.events):
        raise errors.InvalidEvent("the same event id appears twice in one append")
    if not stored and not in_batch:
        return None
    found: list[tuple[int, str, int, str, Any]] = []
    for event in req.events:
        if event.id in in_batch:
            hit = in_batch[event.id]
        elif event.id in stored:
            r = stored[event.id]
            hit = (r["position"], r["stream"], r["version"], r["type"], json.loads(r["data"]))
        else:
            continue
        pos, stream, _version, type_, data = hit
        if stream != req.stream or type_ != event.type or data != event.data:
            raise errors.EventIdConflict(event.id, stream, pos, "same id, different content")
        found.append(hit)
    if not found:
        return None
    if len(found) != len(req.events):
        raise errors.EventIdConflict(
            req.events[0].id, found[0][1], found[0][0], "part of this append is stored already"
        )
    positions = [f[0] for f in found]
    versions = [f[2] for f in found]
    return records.AppendResult(
        stream=req.stream,
        positions=tuple(positions),
        first_version=min(versions),
        last_version=max(versions),
        duplicate=True,
    )
