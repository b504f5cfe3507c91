"""Recomputing the hash chain over a range of the log: the auditor's proof that history is unchanged.

Each row is checked in position order and the first failure is reported with what differs:

- ``gap``: a position is missing (expected N, found M, or nothing after the range's last row);
- ``prev_hash``: the row's prev_hash is not the previous row's hash;
- ``hash``: the hash recomputed from the canonical encoding (ledger/hashing.py) is not the stored one;
- ``version``: a stream's version is not its previous version + 1;
- ``undecodable``: the chain holds, but the event's data is not its type's (ledger/events.py): a
  log written around the service, or by a version that knows more; every reader stops there
  (projections/undecodable.py), so the verdict says so too.

Rows stream through a server-side cursor (ledger/scan.py), so memory stays bounded by the prefetch
and by one integer per stream seen. A range that starts after position 1 is anchored on the stored
hash of the row before it, and a stream first seen inside such a range is checked against the row
that must precede it (one indexed query per chunk of rows, not per row). One row past the range is
read too, so a deleted last row of the range still shows as a gap.

What a chain cannot show alone: a rewrite that recomputes every later hash consistently, or rows
cut off the end of the log. A digest saved earlier (``check_digest``: position and hash of the
head at that time) exposes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import asyncpg
import msgspec

from ledger import events, exporter, hashing, records, scan

Kind = Literal["gap", "prev_hash", "hash", "version", "digest", "undecodable"]
CHUNK: Final = 2000
# The largest position a bigint holds: a range ending there has no row past it to read.
_LARGEST: Final = 2**63 - 1

_PRECEDED: Final = """
SELECT s.position, s.stream, s.version
FROM unnest($1::bigint[], $2::text[], $3::int[]) AS s(position, stream, version)
WHERE NOT EXISTS (SELECT 1 FROM events e
                  WHERE e.stream = s.stream AND e.version = s.version - 1 AND e.position < $4)
ORDER BY s.position LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class Break:
    """The first place where the log is not what the chain says it should be."""

    position: int
    kind: Kind
    detail: str
    expected: str | int | None = None
    found: str | int | None = None


class BeyondHead(ValueError):
    """A range that starts past the row after the head: nothing there to verify, and no break either."""

    def __init__(self, first: int, head: int) -> None:
        super().__init__(f"starts at position {first}, beyond the head ({head})")
        self.first = first
        self.head = head


@dataclass(frozen=True, slots=True)
class Report:
    first: int
    last: int
    hash: str
    checked: int
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "from": self.first, "to": self.last,
                                "checked": self.checked}
        if self.broken is None:
            body.update(position=self.last, hash=self.hash)
            return body
        body.update(position=self.broken.position, problem=self.broken.kind,
                    detail=self.broken.detail)
        if self.broken.expected is not None:
            body["expected"] = self.broken.expected
        if self.broken.found is not None:
            body["found"] = self.broken.found
        return body


def load_json(text: str | bytes) -> Any:
    """Parse stored JSON text as ``json.loads`` would, with msgspec's speed where it can."""
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return json.loads(text)


def recompute(event: records.RecordedEvent, prev_hash: str) -> str:
    canonical = hashing.canonical(
        position=event.position, stream=event.stream, version=event.version, id=event.id,
        type=event.type, data=load_json(event.data), metadata=load_json(event.metadata),
        recorded_at=exporter.time_text(event.recorded_at),
    )
    return hashing.chain(prev_hash, canonical)


class _Versions:
    """Per-stream version continuity; streams first met after the anchor are checked in bulk."""

    def __init__(self, conn: asyncpg.Connection, first: int) -> None:
        self._conn = conn
        self._first = first
        self._last: dict[str, int] = {}
        self._pending: list[tuple[int, str, int]] = []

    def check(self, event: records.RecordedEvent) -> Break | None:
        seen = self._last.get(event.stream)
        self._last[event.stream] = event.version
        if seen is None:
            if self._first == 1 or event.version == 1:
                expected = 1
            else:
                self._pending.append((event.position, event.stream, event.version))
                return None
        else:
            expected = seen + 1
        if event.version == expected:
            return None
        return _version_break(event.position, event.stream, expected, event.version)

    async def settle(self) -> Break | None:
        """The earliest pending first-in-range row whose predecessor in its stream is missing."""
        if not self._pending:
            return None
        positions, stream_names, versions = zip(*self._pending, strict=True)
        self._pending.clear()
        row = await self._conn.fetchrow(_PRECEDED, list(positions), list(stream_names),
                                        list(versions), self._first)
        if row is None:
            return None
        return _version_break(row["position"], row["stream"], None, row["version"])


def _version_break(position: int, stream: str, expected: int | None, found: int) -> Break:
    wanted = f"version {expected}" if expected is not None else f"version {found - 1} before it"
    return Break(position, "version",
                 f"stream {stream}: expected {wanted}, found version {found}",
                 expected=expected, found=found)


def _earliest(*breaks: Break | None) -> Break | None:
    found = [b for b in breaks if b is not None]
    return min(found, key=lambda b: b.position) if found else None


async def chain(
    conn: asyncpg.Connection,
    first: int = 1,
    last: int | None = None,
    *,
    prefetch: int = scan.PREFETCH,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify positions ``first``..``last`` (to the head when None); stops at the first break.

    Raises ``BeyondHead`` when ``first`` is more than one past the head."""
    first = max(1, first)
    if first == 1:
        prev = hashing.GENESIS
    else:
        anchor = await conn.fetchval("SELECT hash FROM events WHERE position = $1", first - 1)
        if anchor is None:
            head_position = await conn.fetchval("SELECT max(position) FROM events") or 0
            if head_position < first - 1:
                raise BeyondHead(first, head_position)
            return Report(first, first - 1, "", 0, Break(
                first - 1, "gap", f"position {first - 1}, the anchor of the range, is missing"))
        prev = anchor
    walk = _Walk(prev, first, last, _Versions(conn, first))
    reported = 0
    broken: Break | None = None
    done = False
    batch: list[records.RecordedEvent] = []
    async with contextlib.aclosing(
        scan.rows(conn, first - 1, None if last is None or last >= _LARGEST else last + 1, prefetch=prefetch)
    ) as stream:
        async for event in stream:
            batch.append(event)
            if len(batch) < CHUNK:
                continue
            broken, done = await asyncio.to_thread(walk.run, batch)
            batch = []
            if broken is not None or done:
                break
            broken = await walk.versions.settle()
            if broken is not None:
                break
            if progress is not None:
                progress(walk.checked - reported)
            reported = walk.checked
        if broken is None and not done and batch:
            broken, done = await asyncio.to_thread(walk.run, batch)
        broken = _earliest(broken, await walk.versions.settle())
    if progress is not None and walk.checked > reported:
        progress(walk.checked - reported)
    if broken is not None:
        return Report(first, broken.position - 1, "", walk.checked, broken)
    return Report(first, walk.expected - 1, walk.prev, walk.checked)


class _Walk:
    """The per-row checks of ``chain``, run a chunk at a time in a worker thread (hash
    recomputation is CPU work the event loop must not wait for); one chunk at a time."""

    def __init__(self, prev: str, first: int, last: int | None, versions: _Versions) -> None:
        self.prev = prev
        self.expected = first
        self.last = last
        self.versions = versions
        self.checked = 0

    def run(self, events: list[records.RecordedEvent]) -> tuple[Break | None, bool]:
        """The first break in ``events``, and whether the range ended inside them."""
        for event in events:
            if self.last is not None and self.expected > self.last:
                return None, True
            broken = self._check(event)
            if broken is not None:
                return broken, True
            self.prev = event.hash
            self.expected += 1
            self.checked += 1
        return None, False

    def _check(self, event: records.RecordedEvent) -> Break | None:
        expected, prev = self.expected, self.prev
        if event.position != expected:
            return Break(expected, "gap", f"expected position {expected}, found {event.position}",
                         expected=expected, found=event.position)
        if event.prev_hash != prev:
            return Break(event.position, "prev_hash",
                         f"prev_hash is {event.prev_hash}, the previous event's hash is {prev}",
                         expected=prev, found=event.prev_hash)
        computed = recompute(event, prev)
        if computed != event.hash:
            return Break(event.position, "hash",
                         f"stored hash {event.hash} differs from the recomputed {computed}",
                         expected=computed, found=event.hash)
        try:
            events.decode(event.type, event.data)
        except events.DecodeError as exc:
            return Break(event.position, "undecodable", f"{event.type} in {event.stream} does not decode: {exc}")
        return self.versions.check(event)


async def check_digest(conn: asyncpg.Connection, position: int, digest_hash: str, *,
                       progress: Callable[[int], None] | None = None) -> Report:
    """Prove that history up to a saved digest is unchanged: recompute 1..position, compare hashes."""
    report = await chain(conn, 1, position, progress=progress)
    if not report.ok:
        return report
    if report.last < position:
        return Report(1, report.last, report.hash, report.checked, Break(
            report.last + 1, "gap",
            f"the log ends at position {report.last}, the digest was taken at {position}",
            expected=position, found=report.last))
    if report.hash != digest_hash:
        return Report(1, report.last, report.hash, report.checked, Break(
            position, "digest",
            f"the chain up to position {position} ends in {report.hash}, the digest says {digest_hash}",
            expected=digest_hash, found=report.hash))
    return report


async def head(conn: asyncpg.Connection) -> tuple[int, str, Any]:
    """Position, hash and recorded_at of the last event (0, GENESIS, None for an empty log)."""
    row = await conn.fetchrow(
        "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1")
    if row is None:
        return 0, hashing.GENESIS, None
    return row["position"], row["hash"], row["recorded_at"]
