"""The applier: follows the log and keeps every claimed target converged.

Shape of one run (``Applier.run``, restarted from scratch by ledger.tasks.supervise if it dies):

1. Load the checkpoint (handlers.checkpoint) and fold the log from there to its head
   (handlers.tracking: the fleet fold plus the applier's own bookkeeping).
2. Join the claim group (handlers.claims) and follow the log live. Every folded event names the
   targets whose work may have changed; each such target owned by this process gets a pass.
3. A pass (one task per target at a time, at most ``applier_concurrency`` passes at once) asks
   tracking.plan what the target needs — apply revision R of deployment D, or prune D — and does
   it through the target's client (handlers.clients, handlers.apply), then records the outcome
   (handlers.outcomes) and takes it into its state straight away. Deployments on one target are
   done one after another; targets in parallel, so a hung cluster holds one slot, never the rest.
4. A temporary failure is recorded (retryable) and the target gets a timer for the next attempt
   (handlers.backoff, Retry-After as a floor); a permanent one is recorded and left until the
   revision or the target changes. Every ``resync_interval`` all owned targets are inspected for
   drift (handlers.compare, handlers.drift: recorded once per occurrence, before it is healed) and
   converged again if out of sync, unless the revision says ``self_heal: false``; such a pass
   records an outcome only if it changed something (drift healed, leftovers pruned).
5. Progressive rollouts: the rollout driver (handlers.rollouts) runs beside the passes on the same
   fold and records each wave's steps; a target whose wave has not started keeps what it had
   (tracking.plan asks projections.waves which revision it may run).

Level-triggered: decisions compare desired state with recorded outcomes, never "events not yet
handled", so a restart, a takeover or a lost notification can only cause a redundant apply, not
a missed one. Every background task lives in one TaskGroup: cancelling ``run`` stops them all.

Nothing in it dies silently, and one target's trouble never stops the others: a pass or a retry
timer that raises unexpectedly is logged with its traceback, counted (``applier-worker`` in the
component registry's restarts), shown as ``applier-target:<name>`` restarting in /readyz, and
retried with backoff, while every other target carries on; the periodic loops (resync,
checkpoint) are supervised on their own. Only the log follower and the claims loop, whose failure
leaves the in-memory state in doubt, take the whole run down, and ``ledger.tasks`` restarts it
from the checkpoint. Retry timers keep their own due time: uvloop's ``call_at`` with a time
already past returns a plain Handle, which has no ``when()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from pathlib import Path
from typing import Any, Final

from handlers import (
    apply,
    backoff,
    checkpoint,
    claims,
    clients,
    compare,
    credentials,
    drift,
    errors,
    follow,
    followed,
    freezegate,
    objects,
    outcomes,
    ownership,
    rollouts,
    tracking,
)
from ledger import components, credfile, events, heap, logs, meters, records, store, tasks
from ledger import credentials as credentials_mod
from ledger import settings as settings_mod
from projections import fleet

log = logging.getLogger(__name__)

CATCH_UP_PAGE: Final = 5000
CHECKPOINT_SECONDS: Final = 30.0
CHECKPOINT_MIN_EVENTS: Final = 1000
_TARGET_TYPES: Final = frozenset({"TargetRegistered", "TargetUpdated", "TargetRetired"})
WORKER: Final = "applier-worker"
RESULTS: Final = outcomes.RESULTS


def worker_component(target: str) -> str:
    """The registry name under which a target whose pass crashed is shown until it recovers."""
    return f"applier-target:{target}"


class Applier:
    def __init__(self, event_store: store.EventStore, dsn: str, settings: settings_mod.Settings,
                 catalogue: credfile.Watched, *, registry: components.Registry | None = None,
                 cache_dir: Path | None = None) -> None:
        self._store = event_store
        self.registry = registry or components.Registry()
        self._dsn = dsn
        self._settings = settings
        self._catalogue = catalogue
        self._cache_dir = cache_dir or settings.data_dir.resolve() / "applier" / "discovery"
        self.ready = asyncio.Event()
        # For the metrics (api/metrics.py): kept across restarts of ``run``, as counters must be.
        self.in_flight = 0
        self.retries = 0
        self.outcomes: dict[str, int] = dict.fromkeys(RESULTS, 0)
        self.latency = meters.Histogram(meters.APPLY_BUCKETS)
        self._reset()

    def _make_claims(self) -> claims.Claims:
        return claims.Claims(
            self._dsn, interval=self._settings.claim_interval, connect_timeout=self._settings.db_timeout,
            candidates=self._candidates, candidate=self._candidate, busy=lambda t: t in self._workers,
            gained=self._gained, lost=self._lost)

    def _reset(self) -> None:
        self.state = tracking.State()
        self.claims = self._make_claims()
        self._pool = clients.Pool(self._cache_dir, timeout=self._settings.apply_timeout,
                                  user_agent=f"ledger-applier ({outcomes.client_name()})")
        self._scopes = objects.ScopeCache()
        self._slots = asyncio.Semaphore(max(1, self._settings.applier_concurrency))
        self._tg: asyncio.TaskGroup | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._resync: set[str] = set()
        self._gates: dict[str, int] = {}
        self._timers: dict[str, tuple[float, asyncio.Handle]] = {}
        self._crashes: dict[str, int] = {}
        self._not_before: dict[tuple[str, str], float] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._saved = 0
        self._driver = rollouts.Driver(self._store, lambda: self.state.fleet)
        self.health = follow.Follower(self._store, lambda: self.state, lambda t: self.claims.owns(t),
                                      self._client_for, self._reach, self.registry,
                                      lost_database=tasks.lost_database)
        self._settled: set[int] = set()  # positions of DriftDetected whose occurrence ended unhealed

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        self._reset()
        self._catalogue.listen(self._credentials_changed)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._start()
                tg.create_task(self._follow(), name="applier-follow")
                tg.create_task(self.claims.run(), name="applier-claims")
                tg.create_task(tasks.supervise("rollout-driver", self._driver.run, self.registry),
                               name="rollout-driver")
                if self._settings.resync_interval > 0:
                    tg.create_task(tasks.supervise("applier-resync", self._resync_loop, self.registry),
                                   name="applier-resync")
                tg.create_task(tasks.supervise("applier-checkpoint", self._checkpoint_loop, self.registry),
                               name="applier-checkpoint")
                tg.create_task(tasks.supervise(follow.COMPONENT, self.health.run, self.registry),
                               name=follow.COMPONENT)
                self.ready.set()
        except Exception as exc:
            # Python 3.11's TaskGroup raises a child's error instead of the CancelledError when both
            # happen at once; a stop request must win, or our supervisor would restart us forever.
            # But a child that crashed leaves the TaskGroup's own cancel of this task counted too:
            # that crash goes to the supervisor (it was a silent, final stop); tasks.stop cancels
            # again should a stop request have come at the same moment.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                if not tasks.crashed(exc):
                    raise asyncio.CancelledError from None
                task.uncancel()
            raise
        finally:
            self._tg = None
            self._catalogue.unlisten(self._credentials_changed)
            self.ready.clear()
            for _due, timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            for target in self._crashes:
                self.registry.forget(worker_component(target))
            await self._pool.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._save(force=True), 3)

    async def _start(self) -> None:
        async with self._store.connection() as conn:
            loaded = await checkpoint.load(conn, timeout=self._settings.db_timeout)
        if loaded is not None:
            self.state = loaded
            self._saved = loaded.position
            log.info("applier resumes from its checkpoint at position %d", loaded.position,
                     extra={"position": loaded.position})
        while True:
            page = await self._store.read_all(self.state.position, CATCH_UP_PAGE)
            for rec in page:
                tracking.fold(self.state, rec)
            if len(page) < CATCH_UP_PAGE:
                break
        del page
        await asyncio.to_thread(heap.give_back)  # what the fold passed through (ledger/heap.py)
        log.info("applier caught up at position %d", self.state.position,
                 extra={"position": self.state.position})

    async def _follow(self) -> None:
        async for rec in self._store.subscribe(self.state.position, batch=CATCH_UP_PAGE):
            if rec.position <= self.state.position:
                continue
            self._fold(rec)

    def _fold(self, rec: records.RecordedEvent) -> None:
        affected = tracking.fold(self.state, rec)
        if rec.type in _TARGET_TYPES:  # the target it names is in ``affected``
            for target in affected:
                self.claims.poke(target)
        for target in affected:
            self._changed(target)
        self._driver.note(rec)
        if rec.type in followed.TYPES:
            self.health.touched(rec)
        if self._gates:
            self._open_gates()
        if self._waiters:
            self._wake_waiters()

    def _credentials_changed(self, old: credentials_mod.Catalogue, new: credentials_mod.Catalogue) -> None:
        names = {n for n in set(old) | set(new) if old.get(n) != new.get(n)}
        for target in tracking.credential_changed(self.state, names):
            self._changed(target)

    # ------------------------------------------------------------------ claims

    def _candidates(self) -> list[str]:
        return [name for name, target in self.state.fleet.targets.items() if not target.retired]

    def _candidate(self, name: str) -> bool:
        target = self.state.fleet.targets.get(name)
        return target is not None and not target.retired

    def _gained(self, targets: set[str], head: int) -> None:
        for target in targets:
            self._gates[target] = head
        self._open_gates()

    def _open_gates(self) -> None:
        position = self.state.position
        for target in [t for t, head in self._gates.items() if head <= position]:
            del self._gates[target]
            self._changed(target)

    def _lost(self, targets: set[str]) -> None:
        for target in targets:
            self._gates.pop(target, None)
            self._again.discard(target)
            self._resync.discard(target)
            timer = self._timers.pop(target, None)
            if timer is not None:
                timer[1].cancel()
            if self._crashes.pop(target, None) is not None:
                self.registry.forget(worker_component(target))
            for key in [k for k in self._not_before if k[1] == target]:
                del self._not_before[key]
            task = self._workers.get(target)
            if task is not None:
                task.cancel()
            self.health.reconcile(target)

    # ------------------------------------------------------------------ scheduling

    def _changed(self, target: str) -> None:
        if not self.claims.owns(target) or target in self._gates or self._tg is None:
            return
        self.health.reconcile(target)
        if target in self._workers:
            self._again.add(target)
            return
        if self._idle(target):
            return
        work = self._work(target)
        try:
            self._workers[target] = self._tg.create_task(work, name=f"applier-{target}")
        except RuntimeError:  # the task group is stopping (shutdown, or a restart after a crash)
            work.close()

    def _idle(self, target: str) -> bool:
        """Whether a pass of ``target`` would find nothing to do: no task for it then. Claiming a
        fleet gains every target at once, and a task per target (most with nothing to apply) held
        ~1.4 KB each until the loop reached it, memory the heap then kept (55 MB at 40,000 targets)."""
        if target in self._resync or target in self._crashes:
            return False
        found = self.state.fleet.targets.get(target)
        return found is None or (not found.retired and not tracking.plan(self.state, target))

    def _timer(self, target: str, when: float) -> None:
        """Pass ``target`` again at loop time ``when`` (the earliest of the times asked for wins)."""
        current = self._timers.get(target)
        if current is not None:
            due, handle = current
            if due <= when:
                return
            handle.cancel()
        self._timers[target] = (when, asyncio.get_running_loop().call_at(when, self._fire, target))

    def _fire(self, target: str) -> None:
        self._timers.pop(target, None)
        try:
            self._changed(target)
        except Exception as exc:
            self._crashed(target, exc)

    async def _work(self, target: str) -> None:
        try:
            while True:
                self._again.discard(target)
                try:
                    await self._pass(target)
                except Exception as exc:
                    self._crashed(target, exc)
                    return
                if target in self._crashes:
                    del self._crashes[target]
                    self.registry.forget(worker_component(target))
                if target not in self._again:
                    return
        finally:
            self._workers.pop(target, None)

    def _crashed(self, target: str, exc: Exception) -> None:
        """A pass (or its timer) raised what nobody expected: keep the others going, retry this one.
        (A database outage is expected: one warning line, and /readyz already names the database.)"""
        crashes = self._crashes.get(target, 0) + 1
        wait = backoff.delay(crashes, base=self._settings.backoff_base, cap=self._settings.backoff_cap)
        if tasks.lost_database(exc):
            log.warning("applier pass for target %s lost the database (%s); retrying in %.1fs", target,
                        components.error_text(exc), wait, extra={"target": target})
            self._timer(target, asyncio.get_running_loop().time() + wait)
            return
        self._crashes[target] = crashes
        log.error("applier pass for target %s crashed (%d in a row); retrying in %.1fs", target, crashes,
                  wait, exc_info=exc, extra={"target": target})
        self.registry.count_restart(WORKER)
        self.registry.restarting(worker_component(target), exc, target=target, crashes=crashes)
        self._timer(target, asyncio.get_running_loop().time() + wait)

    async def _pass(self, target: str) -> None:
        found = self.state.fleet.targets.get(target)
        if found is None:
            return
        if found.retired:
            await self._pool.drop(target)
            return
        resync = target in self._resync
        self._resync.discard(target)
        done: set[str] = set()
        loop = asyncio.get_running_loop()
        while self.claims.owns(target):
            now = loop.time()
            due: tracking.Work | None = None
            for work in self._admitted(target, resync, now):
                if work.deployment in done:
                    continue
                not_before = self._not_before.get((work.deployment, target), 0.0)
                if work.resync or not_before <= now:
                    due = work
                    break
                self._timer(target, not_before)
            if due is None:
                return
            done.add(due.deployment)
            await self._execute(target, due)

    def _admitted(self, target: str, resync: bool, now: float) -> list[tracking.Work]:
        """The plan less what a freeze holds; a timer for when the earliest hold ends."""
        wall = dt.datetime.now(dt.UTC)
        admitted, lifts = freezegate.admit(self.state, target, tracking.plan(self.state, target, resync=resync),
                                           wall, resync=resync)
        if lifts is not None:
            self._timer(target, now + max(0.0, (lifts - wall).total_seconds()))
        return admitted

    async def _execute(self, target: str, work: tracking.Work) -> None:
        if work.resync and work.revision and not await self._inspect(target, work):
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome: outcomes.Outcome
        retry_after: float | None = None
        client: clients.Client | None = None
        try:
            async with self._slots:  # bounds the clusters talked to at once; recording is outside
                started = loop.time()
                self.in_flight += 1
                if work.attempt > 1:
                    self.retries += 1
                try:
                    credential = credentials.credential_for(self.state.fleet.targets[target],
                                                            self._catalogue.current())
                    client = await self._pool.get(target, credential)
                    scopes = self._scopes.get(self.state.fleet, work.deployment)
                    if work.revision:
                        manifests = fleet.manifests_at(self.state.fleet, work.deployment, work.revision)
                        result = await apply.converge(client, work.deployment, work.revision, manifests, scopes,
                                                      ownership.holder(self.state, target))
                    else:
                        result = await apply.remove(client, work.deployment, scopes)
                finally:
                    self.in_flight -= 1
                    self.latency.observe(loop.time() - started)
        except errors.ApplyError as exc:
            if isinstance(exc, errors.TemporaryError):
                retry_after = exc.delay
            retry_in = (backoff.delay(work.attempt, base=self._settings.backoff_base,
                                      cap=self._settings.backoff_cap, retry_after=retry_after)
                        if exc.retryable else None)
            outcome = events.ApplyFailed(
                deployment=work.deployment, revision=work.revision, target=target, error=exc.message,
                attempt=work.attempt, retryable=exc.retryable, status=exc.status,
                retry_in_ms=None if retry_in is None else int(retry_in * 1000), reason=exc.reason)
        else:
            if work.resync and not result.changed:
                return
            outcome = events.ApplySucceeded(
                deployment=work.deployment, revision=work.revision, target=target,
                objects=result.applied, pruned=result.pruned,
                duration_ms=int((loop.time() - started) * 1000), attempt=work.attempt)
        finally:
            if client is not None:
                await client.flush()
        if not self.claims.owns(target):
            return  # claim lost meanwhile: the new owner re-applies and records
        try:
            position = await outcomes.record(self._store, outcome)
        except outcomes.AlreadyRecorded as exc:
            log.info("%s; catching up before deciding again", exc, extra=logs.fields(
                deployment=work.deployment, target=target, revision=work.revision, position=exc.position))
            await self._reach(exc.position)
            self._again.add(target)
            return
        tracking.observe(self.state, outcome, position, time.time())
        self.health.reconcile(target)
        result_word = _log_outcome(outcome, position)
        self.outcomes[result_word] = self.outcomes.get(result_word, 0) + 1
        key = (work.deployment, target)
        if isinstance(outcome, events.ApplyFailed) and outcome.retry_in_ms is not None:
            wait = outcome.retry_in_ms / 1000
            self._not_before[key] = loop.time() + wait
            self._timer(target, loop.time() + wait)
        else:
            self._not_before.pop(key, None)

    async def _reach(self, position: int) -> None:
        """Wait until the fold has taken in ``position``."""
        if self.state.position >= position:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((position, future))
        await future

    def _wake_waiters(self) -> None:
        position = self.state.position
        still: list[tuple[int, asyncio.Future[None]]] = []
        for wanted, future in self._waiters:
            if wanted <= position:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((wanted, future))
        self._waiters = still

    async def _client_for(self, target: str) -> clients.Client:
        """The target's client as a pass would get it (the health watches share it)."""
        found = self.state.fleet.targets.get(target)
        if found is None:
            raise errors.PermanentError(f"target {target} is not registered")
        return await self._pool.get(target, credentials.credential_for(found, self._catalogue.current()))

    # ------------------------------------------------------------------ drift

    async def _inspect(self, target: str, work: tracking.Work) -> bool:
        """A resync looks before it heals (handlers.compare): drift it finds is recorded once per
        occurrence (handlers.drift). True when the target is to be converged: something is out of
        sync and the revision heals (``self_heal``)."""
        heal = tracking.self_heal(self.state, work.deployment, work.revision)
        client: clients.Client | None = None
        try:
            async with self._slots:
                credential = credentials.credential_for(self.state.fleet.targets[target], self._catalogue.current())
                client = await self._pool.get(target, credential)
                manifests = fleet.manifests_at(self.state.fleet, work.deployment, work.revision)
                found = await compare.inspect(client, work.deployment, work.revision, manifests,
                                              self._scopes.get(self.state.fleet, work.deployment),
                                              ownership.holder(self.state, target))
        except errors.ApplyError as exc:
            if heal:
                return True  # the converge meets it again and records it, as a resync always did
            log.warning("drift of %s on %s not inspected: %s", work.deployment, target, exc.message,
                        extra=logs.fields(deployment=work.deployment, target=target, revision=work.revision))
            return False
        finally:
            if client is not None:
                await client.flush()
        if not self.claims.owns(target):
            return False  # claim lost meanwhile: the new owner looks again
        p = tracking.pair(self.state, work.deployment, target)
        new, ended = drift.news(p.drift, self._settled, found.drifted, found.in_sync)
        self._settled |= ended
        if new:
            detected = [drift.detected(work.deployment, work.revision, target, f) for f in new]
            try:
                positions = await outcomes.append(self._store, outcomes.stream(work.deployment),
                                                  drift.new_events(p, detected))
            except outcomes.AlreadyRecorded as exc:
                log.info("%s; catching up before inspecting again", exc, extra=logs.fields(
                    deployment=work.deployment, target=target, revision=work.revision, position=exc.position))
                await self._reach(exc.position)
                self._resync.add(target)
                self._again.add(target)
                return False
            for event, position in zip(detected, positions, strict=True):
                tracking.observe_drift(self.state, event, position)
                log.info("drift of deployment %s revision %d on target %s: %s %s/%s differs (%s)",
                         event.deployment, event.revision, target, event.object.kind,
                         event.object.namespace or "", event.object.name, ", ".join(event.fields) or "the whole object",
                         extra={"deployment": event.deployment, "target": target, "revision": event.revision,
                                "position": position})
        return heal and found.unsynced

    # ------------------------------------------------------------------ periodic

    async def _resync_loop(self) -> None:
        interval = self._settings.resync_interval
        while True:
            await asyncio.sleep(interval * (0.9 + 0.2 * random.random()))
            for target in list(self.claims.owned):
                self._resync.add(target)
                self._changed(target)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                await self._save(force=False)
            except Exception as exc:  # a cache: failing to write it is no reason to stop applying
                log.warning("applier checkpoint not saved: %r", exc)

    async def _save(self, *, force: bool) -> None:
        position = self.state.position
        if position <= self._saved or (not force and position - self._saved < CHECKPOINT_MIN_EVENTS):
            return
        packed = checkpoint.pack(self.state)
        async with self._store.connection() as conn:
            await checkpoint.save(conn, position, packed, timeout=self._settings.db_timeout)
        self._saved = position

    # ------------------------------------------------------------------ status

    @property
    def queued(self) -> int:
        """Targets whose pass waits for an apply slot (``applier_concurrency``)."""
        return max(0, len(self._workers) - self.in_flight)

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready.is_set(),
            "position": self.state.position,
            "claims": self.claims.snapshot(),
            "applying": len(self._workers),
            "retry_timers": len(self._timers),
            "health": self.health.status(),
        }


def _log_outcome(outcome: outcomes.Outcome, position: int) -> str:
    """One line per outcome recorded, with the deployment, target, revision and position it concerns;
    returns its result (``RESULTS``)."""
    extra = {"deployment": outcome.deployment, "target": outcome.target, "revision": outcome.revision,
             "position": position, "attempt": outcome.attempt}
    if isinstance(outcome, events.ApplySucceeded):
        what = "pruned" if not outcome.revision else "applied"
        log.info("%s deployment %s revision %d on target %s (%d objects, %d pruned, %d ms)", what,
                 outcome.deployment, outcome.revision, outcome.target, len(outcome.objects),
                 len(outcome.pruned), outcome.duration_ms, extra={**extra, "result": "succeeded"})
        return "succeeded"
    result = "retryable" if outcome.retryable else "failed"
    log.warning("apply of deployment %s revision %d on target %s failed (attempt %d, %s): %s",
                outcome.deployment, outcome.revision, outcome.target, outcome.attempt,
                "retrying" if outcome.retry_in_ms is not None else "permanent", outcome.error,
                extra={**extra, "result": result})
    return result
