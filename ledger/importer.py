"""Restoring an ndjson export into an empty ledger, with the same positions, ids, hashes and times.

Import bypasses the batching writer on purpose: the writer assigns positions and recorded_at, and
a restore must keep the originals. Every line is checked before it is written: positions
contiguous from 1, prev_hash equal to the previous line's hash, the hash recomputed from the
canonical encoding, stream versions dense, ``recorded_at`` in its canonical form, and the data
decoded as its type's (ledger/events.py: known type, numbers within the read models' bounds), as
the API checks every submission, so a crafted log whose chain is recomputed cannot carry what no
append could. Rows go in with
COPY in large batches inside ONE transaction, so a refused line (named by its line number) rolls
back everything and a refusal writes nothing. The transaction holds the writer's advisory lock
(ledger/writer.py) and checks that the log is empty, so no service appends meanwhile; the single
NOTIFY is delivered when it commits.

Only the ledger's own ndjson format is accepted: a CloudEvents export leaves out part of the
metadata the hashes cover, so it cannot be restored exactly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import msgspec

from ledger import errors, events, exporter, hashing, verify, writer

BATCH: Final = 10_000
_COLUMNS: Final = ("position", "stream", "version", "id", "type", "data", "metadata", "recorded_at",
                   "prev_hash", "hash")


class Refused(errors.LedgerError):
    """The input is not a contiguous, intact export of valid events; ``line`` is 1-based;
    ``position`` and ``field`` (``$.path`` in the data, or ``type``) name an invalid event's fault."""

    def __init__(self, line: int, reason: str, *, position: int | None = None, field: str | None = None) -> None:
        self.line = line
        self.reason = reason
        self.position = position
        self.field = field
        super().__init__(f"line {line}: {reason}")


class NotEmpty(errors.LedgerError):
    def __init__(self, head: int) -> None:
        self.head = head
        super().__init__(f"the ledger already holds events (head position {head}); "
                         "import restores into an empty ledger only")


@dataclass(frozen=True, slots=True)
class Result:
    count: int
    position: int
    hash: str


_decoder: Final = msgspec.json.Decoder(exporter.Line)


def _parse(number: int, raw: bytes) -> exporter.Line:
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        if b'"specversion"' in raw:
            raise Refused(number, "this is a CloudEvents export; import needs the ledger's ndjson "
                                  "format (ledger export --format ndjson)") from exc
        raise Refused(number, f"not an export line: {exc}") from exc


def _recorded_at(number: int, text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise Refused(number, f"recorded_at {text!r} is not a timestamp") from exc
    if moment.tzinfo is None or hashing.format_time(moment) != text:
        raise Refused(number, f"recorded_at {text!r} is not in the canonical form "
                              "YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return moment


class _Checker:
    """The chain rules, line by line; raises Refused at the first line that breaks one."""

    def __init__(self) -> None:
        self.position = 0
        self.hash = hashing.GENESIS
        self.versions: dict[str, int] = {}

    def row(self, number: int, line: exporter.Line) -> tuple[Any, ...]:
        if line.position != self.position + 1:
            if self.position == 0:
                raise Refused(number, f"starts at position {line.position}; an import into an empty "
                                      "ledger must start at position 1")
            raise Refused(number, f"expected position {self.position + 1}, found {line.position}")
        if line.prev_hash != self.hash:
            raise Refused(number, f"prev_hash {line.prev_hash} is not the previous hash {self.hash}")
        version = self.versions.get(line.stream, 0) + 1
        if line.version != version:
            raise Refused(number, f"stream {line.stream}: expected version {version}, "
                                  f"found {line.version}")
        moment = _recorded_at(number, line.recorded_at)
        try:
            data = verify.load_json(bytes(line.data))
            metadata = verify.load_json(bytes(line.metadata))
        except ValueError as exc:
            raise Refused(number, f"data or metadata is not JSON: {exc}") from exc
        _check_event(number, line)
        canonical = hashing.canonical(
            position=line.position, stream=line.stream, version=line.version, id=line.id,
            type=line.type, data=data, metadata=metadata, recorded_at=line.recorded_at,
        )
        computed = hashing.chain(self.hash, canonical)
        if computed != line.hash:
            raise Refused(number, f"hash {line.hash} differs from the recomputed {computed}")
        self.position = line.position
        self.hash = line.hash
        self.versions[line.stream] = line.version
        return (line.position, line.stream, line.version, line.id, line.type,
                bytes(line.data).decode(), bytes(line.metadata).decode(), moment,
                line.prev_hash, line.hash)


def _check_event(number: int, line: exporter.Line) -> None:
    """The event's data is its type's, within the bounds of the read models it folds into: an
    imported log is held to what the API refuses at the door (ledger/events.py), or a projection
    would stall on it after the restore."""
    try:
        events.decode(line.type, bytes(line.data))
    except events.UnknownType as exc:
        raise Refused(number, f"position {line.position}: {exc}", position=line.position, field="type") from exc
    except events.InvalidData as exc:
        raise Refused(number, f"position {line.position}: {line.type} data at {exc.path}: {exc.reason}",
                      position=line.position, field=exc.path) from exc


async def _copy(conn: asyncpg.Connection, rows: list[tuple[Any, ...]], numbers: list[int]) -> None:
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
    except asyncpg.UniqueViolationError as exc:
        await _name_duplicate(conn, rows, numbers, exc)
        raise


async def _name_duplicate(conn: asyncpg.Connection, rows: list[tuple[Any, ...]], numbers: list[int],
                          exc: asyncpg.UniqueViolationError) -> None:
    """Turn a duplicate event id (positions and versions are unique by the checks) into a Refused."""
    ids = [r[3] for r in rows]
    stored = set(await conn.fetchval(
        "SELECT coalesce(array_agg(id), '{}') FROM events WHERE id = ANY($1::uuid[])", ids))
    seen: set[uuid.UUID] = set()
    for number, event_id in zip(numbers, ids, strict=True):
        if event_id in stored or event_id in seen:
            raise Refused(number, f"event id {event_id} appears twice") from exc
        seen.add(event_id)


async def restore(
    conn: asyncpg.Connection,
    lines: Iterable[bytes],
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> Result:
    """Check and write every line in one transaction; raises Refused or NotEmpty, writing nothing."""
    checker = _Checker()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", writer.APPEND_LOCK)
        head = await conn.fetchval("SELECT max(position) FROM events")
        if head is not None:
            raise NotEmpty(head)
        pending: list[tuple[Any, ...]] = []
        numbers: list[int] = []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            pending.append(checker.row(number, _parse(number, raw)))
            numbers.append(number)
            if len(pending) >= batch:
                await _copy(conn, pending, numbers)
                if progress is not None:
                    progress(len(pending))
                pending, numbers = [], []
        if pending:
            await _copy(conn, pending, numbers)
            if progress is not None:
                progress(len(pending))
        if checker.position:
            await conn.execute("SELECT pg_notify($1, $2)", writer.NOTIFY_CHANNEL,
                               str(checker.position))
    return Result(checker.position, checker.position, checker.hash)
