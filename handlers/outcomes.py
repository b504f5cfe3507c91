"""Outcome events: their deterministic ids, their content, and appending them exactly once.

The id of an outcome is ``uuid5(NAMESPACE, "<deployment>/<revision>/<target>/<attempt>")``, so
whatever happens — a crash after the append but before we knew it committed, a restart that
re-applies the same attempt, two processes briefly both believing they own a target — one attempt
can be recorded once only: the store's unique id turns a second append into a no-op (same
content) or an EventIdConflict (different content, e.g. another duration), which we report as
:class:`AlreadyRecorded` so the caller re-reads the log instead of recording twice.

Revision 0 names the empty desired state: ``ApplySucceeded`` with revision 0 records that the
deployment's objects were pruned from a target it no longer applies to (removed deployment,
target no longer selected); attempts of prunes are counted apart from those of applies.

An append that meets an unavailable database is retried (same event, so the retry is idempotent)
until it lands or the caller is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Final

from handlers import backoff
from ledger import errors, events, records, store

log = logging.getLogger(__name__)

NAMESPACE: Final = uuid.UUID("5b0f6f4e-2f7a-5d57-9a4e-6c6564676572")
ACTOR: Final = "applier"
# What an outcome recorded says: applied, failed to be retried, failed for good.
RESULTS: Final = ("succeeded", "retryable", "failed")
PRUNE: Final = 0


class AlreadyRecorded(Exception):
    """This attempt's id is taken by an outcome we had not folded yet (at ``position``)."""

    def __init__(self, event_id: uuid.UUID, position: int) -> None:
        super().__init__(f"outcome {event_id} is already recorded at position {position}")
        self.event_id = event_id
        self.position = position


def event_id(deployment: str, revision: int, target: str, attempt: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{deployment}/{revision}/{target}/{attempt}")


def stream(deployment: str) -> str:
    return f"rollout-{deployment}"


def client_name() -> str:
    """Which applier process recorded an outcome (metadata, for audits and claim checks)."""
    return f"ledger-applier/{socket.gethostname()}/{os.getpid()}"


Outcome = events.ApplySucceeded | events.ApplyFailed


def new_event(outcome: Outcome) -> records.NewEvent:
    return records.NewEvent(
        id=event_id(outcome.deployment, outcome.revision, outcome.target, outcome.attempt),
        type=events.type_name(outcome),
        data=events.to_data(outcome),
        metadata={"actor": ACTOR, "client": client_name()},
    )


async def record(event_store: store.EventStore, outcome: Outcome, *, retry_cap: float = 5.0) -> int:
    """Append ``outcome`` to its rollout stream; returns its position."""
    return (await append(event_store, stream(outcome.deployment), [new_event(outcome)], retry_cap=retry_cap))[0]


async def append(event_store: store.EventStore, stream_name: str, new: list[records.NewEvent], *,
                 retry_cap: float = 5.0) -> list[int]:
    """Append events with deterministic ids, in one batch, exactly once; returns their positions."""
    attempt = 0
    while True:
        try:
            result = await event_store.append(stream_name, "any", new)
        except errors.EventIdConflict as exc:
            raise AlreadyRecorded(exc.event_id, exc.position) from exc
        except errors.StoreUnavailable as exc:
            attempt += 1
            wait = backoff.delay(attempt, base=0.1, cap=retry_cap)
            log.warning("cannot record %s yet (%s); retrying in %.1fs", new[0].id, exc.detail, wait)
            await asyncio.sleep(wait)
            continue
        return list(result.positions)
