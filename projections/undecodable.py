"""Events in the log that this version cannot decode: every reader stops at one, none passes it by.

Every path into the log refuses such an event (projections/rules.py, ledger/importer.py), so one in
the log means a log written around the service (tampering) or by a version that knows more (skew
after a downgrade). EventStoreDB stops a subscription on an event it cannot handle rather than skip
it; so does every reader here that needs all events up to a position, because a fold that skipped
one would state a fleet that never was:

- the projector stalls at it (projections/runner.py: /readyz 503 names it, ``ledger_projector_stalled``);
- a replay (``/v1/state?at=``, the audit page) up to or past it answers 503 naming the position,
  the type and why (api/problems.py), while positions before it still replay;
- the applier stops at it: its loop fails with this error, the supervisor restarts it from its
  checkpoint (before the event) with backoff and /readyz names it, so nothing is applied from a
  state the log does not hold;
- a write whose decision folds it (the stream's state, the targets, the freezes:
  projections/loading.py) answers 503 naming it and writes nothing, so no rule is decided on a
  state the log does not hold;
- ``/v1/verify`` reports it as a break of kind ``undecodable`` (ledger/verify.py).

Each stop is logged as an error with the position and counted per reader in
``ledger_undecodable_events_total`` (process-wide, like ``ledger.db.ERRORS``), so an operator sees
it even where no request asks. A fix (an upgrade that knows the type, or a repair of the row) lets
every reader go on by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ledger import errors, events
from projections import fleet

log = logging.getLogger(__name__)

READERS: Final = ("replay", "applier", "commands")
# reader -> events it stopped at (each time it met one), process-wide.
STOPS: Final[dict[str, int]] = dict.fromkeys(READERS, 0)


def stop(reader: str, position: int, stream: str, type_: str, data: str | bytes) -> errors.Undecodable:
    """Count and log ``reader``'s stop at the event, and the error to raise for it."""
    try:
        events.decode(type_, data)
        reason = "it did not fold"
    except events.DecodeError as exc:
        reason = str(exc)
    return stopped(errors.Undecodable(reader, position, stream, type_, reason))


def stopped(exc: errors.Undecodable) -> errors.Undecodable:
    """Count and log a reader's stop (here, or in a lane worker: api/lanes.py counts it again in
    the API process, whose metrics and log are the service's)."""
    STOPS[exc.reader] = STOPS.get(exc.reader, 0) + 1
    log.error("%s stops at position %d: %s %s does not decode: %s", exc.reader, exc.position, exc.type, exc.stream,
              exc.reason, extra={"position": exc.position, "stream": exc.stream, "type": exc.type, "reader": exc.reader})
    return exc


def fold(reader: str, state: fleet.Fleet, row: Sequence[Any]) -> events.AnyEvent:
    """Fold one stored event given as columns (``fleet.fold_row``'s), or stop ``reader`` at it."""
    event = fleet.fold_row(state, *row)
    if event is None:
        raise stop(reader, row[0], row[1], row[3], row[4])
    return event


def fold_all(reader: str, state: fleet.Fleet, rows: Iterable[Sequence[Any]]) -> None:
    """``fold`` each row in turn (a worker thread's unit of work for replay and commands)."""
    for row in rows:
        fold(reader, state, row)
