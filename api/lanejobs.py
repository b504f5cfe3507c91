"""The expensive lane's jobs, and the messages that carry them to a lane worker and back.

Why a module of its own: the API process (api/workers.py) and the lane worker process
(api/laneworker.py) speak these messages over the worker's stdin and stdout, and the worker runs
``run``: the replay fold of ``/v1/state`` with its answer's encoding, the audit page's folds (the
fleet at a moment, and what changed since another), and the hash chain's recomputation of
``/v1/verify``. An answer is the response body's bytes, so the API process passes
them on as they are, byte for byte what the route answered when it folded in-process.

Frames are a 4-byte big-endian length, then a msgpack message (msgspec): ``Start`` (first, the
database URL: never on the command line), then one ``State`` or ``Verify`` per request, each
answered by one ``Answer``. Errors travel as what the API process answers them with: a field the
request named wrongly (``invalid``), the database unavailable (``unavailable``), an event that does
not decode (``undecodable``, ledger.errors.Undecodable's fields), anything else (``error``: a bug,
answered 500 as in-process).
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import IO, Any, Final, Literal

import asyncpg
import msgspec

from ledger import errors
from ledger import verify as verify_mod
from projections import difference, replay, views

_LENGTH: Final = struct.Struct(">I")


class Start(msgspec.Struct, tag="start"):
    dsn: str
    timeout: float
    log_format: str = "auto"
    log_level: str = "WARNING"


class State(msgspec.Struct, tag="state"):
    """``GET /v1/state?at=``: ``raw`` as asked; ``wanted`` a position, ``moment`` a time, neither: head."""

    raw: str
    wanted: int | None = None
    moment: dt.datetime | None = None


class Verify(msgspec.Struct, tag="verify"):
    first: int
    last: int | None = None


class Audit(msgspec.Struct, tag="audit"):
    """The audit page (api/ui/audit.py): the fleet at a position (``at``) or a time (``at_moment``),
    head when neither; with ``since``/``since_moment``, what changed between that moment and it."""

    at: int | None = None
    at_moment: dt.datetime | None = None
    since: int | None = None
    since_moment: dt.datetime | None = None


class AuditView(msgspec.Struct):
    """An ``Audit`` job's answer: ``state`` as views.state renders it; ``since`` the earlier
    moment's position when one was asked, with ``changes`` between the two."""

    state: dict[str, Any]
    position: int
    head: int
    recorded_at: dt.datetime | None
    since: int | None
    changes: list[difference.Change]


Job = State | Verify | Audit
Request = Start | State | Verify | Audit
Status = Literal["ready", "ok", "invalid", "unavailable", "undecodable", "error"]


class Answer(msgspec.Struct):
    status: Status
    body: bytes = b""
    field: str = ""
    detail: str = ""
    # The worker's process id (ready), its database backend's (every answer); undecodable: the event's.
    pid: int = 0
    backend: int = 0
    position: int = 0
    stream: str = ""
    type: str = ""
    reader: str = ""


_encoder: Final = msgspec.msgpack.Encoder()
_views: Final = msgspec.json.Decoder(AuditView)
_requests: Final = msgspec.msgpack.Decoder(Request)
_answers: Final = msgspec.msgpack.Decoder(Answer)


def frame(message: Request | Answer) -> bytes:
    payload = _encoder.encode(message)
    return _LENGTH.pack(len(payload)) + payload


def length(header: bytes) -> int:
    return int(_LENGTH.unpack(header)[0])


HEADER: Final = _LENGTH.size


def decode_request(payload: bytes) -> Request:
    request: Request = _requests.decode(payload)
    return request


def decode_answer(payload: bytes) -> Answer:
    return _answers.decode(payload)


def read_request(stream: IO[bytes]) -> Request | None:
    """The next request from a blocking stream (the worker's stdin); None at its end."""
    header = stream.read(HEADER)
    if len(header) < HEADER:
        return None
    payload = stream.read(length(header))
    return decode_request(payload)


def key(job: Job) -> tuple[object, ...]:
    """What makes two jobs the same computation (coalesced verifies, api/lanes.py)."""
    if isinstance(job, Verify):
        return ("verify", job.first, job.last)
    if isinstance(job, Audit):
        return ("audit", job.at, job.at_moment, job.since, job.since_moment)
    return ("state", job.raw, job.wanted, job.moment)


def decode_view(body: bytes) -> AuditView:
    view: AuditView = _views.decode(body)
    return view


async def run(conn: asyncpg.Connection, job: Job) -> Answer:
    """One job on the worker's connection; database errors leave as the store's (ledger/db.py)."""
    try:
        if isinstance(job, Verify):
            return await _verify(conn, job)
        if isinstance(job, Audit):
            return await _audit(conn, job)
        return await _state(conn, job)
    except errors.Undecodable as exc:
        return Answer("undecodable", detail=exc.reason, position=exc.position, stream=exc.stream,
                      type=exc.type, reader=exc.reader)


class _Beyond(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.detail = field, detail


async def _position(conn: asyncpg.Connection, field: str, at: int | None, moment: dt.datetime | None,
                    head: int) -> int:
    """The position asked for (``at``, or the last one recorded by ``moment``), head when neither."""
    if at is not None:
        if at > head:
            raise _Beyond(field, f"position {at} is beyond the head of the log ({head})")
        return at
    return await replay.position_at(conn, moment) if moment is not None else head


async def _state(conn: asyncpg.Connection, job: State) -> Answer:
    head = await replay.head(conn)
    try:
        position = await _position(conn, "at", job.wanted, job.moment, head)
    except _Beyond as exc:
        return Answer("invalid", field=exc.field, detail=exc.detail)
    fleet = await replay.fleet_at(conn, position)
    # Freezes are said active at the moment asked for; at a position, when its event was recorded.
    now = job.moment if job.moment is not None else dt.datetime.now(dt.UTC) if job.wanted is None else None
    return Answer("ok", body=msgspec.json.encode({"at": job.raw, "head": head, **views.state(fleet, now)}))


async def _audit(conn: asyncpg.Connection, job: Audit) -> Answer:
    head = await replay.head(conn)
    try:
        position = await _position(conn, "at", job.at, job.at_moment, head)
        compare = job.since is not None or job.since_moment is not None
        since = await _position(conn, "since", job.since, job.since_moment, head) if compare else None
    except _Beyond as exc:
        return Answer("invalid", field=exc.field, detail=exc.detail)
    state = await replay.fleet_at(conn, position)
    found = difference.changes(await replay.fleet_at(conn, since), state) if since is not None else []
    return Answer("ok", body=msgspec.json.encode(AuditView(
        views.state(state), position, head, state.recorded_at, since, found)))


async def _verify(conn: asyncpg.Connection, job: Verify) -> Answer:
    try:
        report = await verify_mod.chain(conn, job.first, job.last)
    except verify_mod.BeyondHead as exc:
        return Answer("invalid", field="from", detail=str(exc))
    return Answer("ok", body=msgspec.json.encode(report.as_dict()))
