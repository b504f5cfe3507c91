"""The rollout driver: records each progressive rollout's next step as the log moves and time passes.

It runs inside the applier (handlers/applier.py), on the applier's own fold of the log, so what it
decides and what the applier lets through (projections/waves.py ``revision_for``) come from one
state. The decision is pure (projections/rollout_decisions.py); this module is the I/O around it:
which deployments to look at again (those whose streams an event touched, all of them when a
target changed), a timer for the end of each soak, and the appends.

Every event it records has a deterministic id, so a restart mid-soak, a crash between an append and
the fold, or several appliers each running a driver never record one twice (the second append of an
id with the same content is a no-op). After an append it waits for the fold to take it in before
deciding on that deployment again. An automatic rollback goes to ``deployment-<name>`` with the
version it decided on as the expected version: a revision submitted meanwhile supersedes the halted
rollout instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Final

from handlers import outcomes
from ledger import errors, events, records, store
from projections import fleet, rollout_decisions, waves

log = logging.getLogger(__name__)

ACTOR: Final = waves.LEDGER
_TARGET_TYPES: Final = frozenset({"TargetRegistered", "TargetUpdated", "TargetRetired"})


class Driver:
    def __init__(self, event_store: store.EventStore, state: Callable[[], fleet.Fleet]) -> None:
        self._store = event_store
        self._state = state
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._awaiting: dict[str, int] = {}  # deployment -> position its last append must be folded to
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def note(self, rec: records.RecordedEvent) -> None:
        """The applier folded ``rec``: look again at the deployments it may move."""
        category, _, name = rec.stream.partition("-")
        if category in ("deployment", "rollout"):
            self._mark(name)
        elif rec.type in _TARGET_TYPES:
            for deployment in self._state().deployments.values():
                if deployment.progress is not None and deployment.progress.strategy is not None:
                    self._mark(deployment.name)
        if self._awaiting:
            position = rec.position
            for waiting in [d for d, p in self._awaiting.items() if p <= position]:
                del self._awaiting[waiting]
                self._mark(waiting)

    def _mark(self, name: str) -> None:
        self._dirty.add(name)
        self._wake.set()

    async def run(self) -> None:
        """Decide for every deployment once, then whenever one may have moved (cancel to stop)."""
        self._awaiting.clear()
        for name in self._state().deployments:
            self._mark(name)  # a soak that ended while no process ran ends now
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._dirty:
                    name = self._dirty.pop()
                    if name not in self._awaiting:
                        await self._step(name)
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    async def _step(self, name: str) -> None:
        deployment = self._state().deployments.get(name)
        if deployment is None:
            return
        decision = rollout_decisions.decide(deployment, dt.datetime.now(dt.UTC))
        if decision.due is not None:
            self._at(name, decision.due)
        position = 0
        if decision.record:
            progress = deployment.progress
            halts = progress.halts if progress is not None else 0
            new = [records.NewEvent(rollout_decisions.id_of(e, halts), events.type_name(e), events.to_data(e),
                                    _metadata()) for e in decision.record]
            position = await self._append(f"rollout-{name}", "any", new)
        if decision.rollback is not None:
            rollback = decision.rollback
            meta = _metadata()
            meta["causation_id"] = str(decision.rollback_cause)
            meta["reason"] = rollback.message
            new_event = records.NewEvent(
                rollout_decisions.event_id(name, deployment.current_revision, "RolledBack"),
                events.type_name(rollback), events.to_data(rollback), meta)
            position = max(position, await self._append(f"deployment-{name}", deployment.version, [new_event]))
        if position > self._state().position:
            self._awaiting[name] = position
        elif position:
            self._mark(name)  # the fold took it in while the append was being answered

    async def _append(self, stream: str, expected: records.ExpectedVersion,
                      new: list[records.NewEvent]) -> int:
        try:
            result = await self._store.append(stream, expected, new)
        except errors.WrongExpectedVersion:
            log.info("%s moved on before the rollout driver's append; deciding again", stream)
            return 0
        except errors.EventIdConflict as exc:
            log.info("a rollout step for %s is recorded already (%s); deciding again after it", stream, exc)
            return exc.position
        return result.positions[-1]

    def _at(self, name: str, due: dt.datetime) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        delay = max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()) + 0.01
        self._timers[name] = asyncio.get_running_loop().call_later(delay, self._mark, name)

    def status(self) -> dict[str, Any]:
        return {"awaiting": len(self._awaiting), "soak_timers": len(self._timers)}


def _metadata() -> dict[str, Any]:
    return {"actor": ACTOR, "client": outcomes.client_name()}
