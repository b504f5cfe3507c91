"""The store's own errors: callers branch on these, never on driver exceptions or message text."""

from __future__ import annotations

from uuid import UUID


class LedgerError(Exception):
    """Base of every error the ledger layer raises on purpose."""


class WrongExpectedVersion(LedgerError):
    def __init__(self, stream: str, expected: int | str, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream} is at version {actual}, but the append expected {expected}"
        )


class EventIdConflict(LedgerError):
    """An event id that is already stored with other content (or a partial retry)."""

    def __init__(self, event_id: UUID, stream: str, position: int, detail: str) -> None:
        self.event_id = event_id
        self.stream = stream
        self.position = position
        super().__init__(
            f"event id {event_id} is already stored at position {position} in {stream}: {detail}"
        )


class StreamNotFound(LedgerError):
    def __init__(self, stream: str) -> None:
        self.stream = stream
        super().__init__(f"stream {stream} has no events")


class StoreUnavailable(LedgerError):
    """PostgreSQL cannot be reached or answered too late; the caller may retry."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"the event store is unavailable: {detail}")


class InvalidEvent(LedgerError):
    """An event the database refused for its content (e.g. a NUL character in JSON text)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class Undecodable(LedgerError):
    """The log holds an event this version cannot decode (projections/undecodable.py): a reader that
    needs every event up to a position stops there rather than pass it by."""

    def __init__(self, reader: str, position: int, stream: str, type_: str, reason: str) -> None:
        self.reader = reader
        self.position = position
        self.stream = stream
        self.type = type_
        self.reason = reason
        super().__init__(f"the event at position {position} ({type_} in {stream}) does not decode: {reason}")
