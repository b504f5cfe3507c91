"""Following health after an apply: is the revision actually running on the target?

Once a target's apply succeeds, the applier hands its objects to the :class:`Follower`, which watches
them (handlers.watching: one shared watch per cluster, kind and namespace) and judges them together
with the pure rules of projections.health. It records, in ``rollout-<deployment>``:

- ``TargetHealthy`` when every object is current (a suspended one, a paused Deployment as the
  manifests asked, counts as done: waiting on it would never end);
- ``TargetDegraded`` when one fails (the rule's reason, e.g. ``ProgressDeadlineExceeded``), or when
  the revision's ``progress_deadline_seconds`` pass, counted from the apply's outcome as the log
  recorded it, while an object is still progressing (reason ``ProgressDeadline``).

It goes on watching after a verdict, for as long as that apply is the target's latest: a healthy
target that fails later is recorded degraded, a degraded one that recovers healthy (a flip; being
briefly "progressing" again, as during a pod restart, records nothing). A new apply (a new revision,
a healed drift), a pause, a removal, a lost claim or a retired target ends the follow.

Decisions:

- **Exactly once**: a health event's id is ``uuid5(outcomes.NAMESPACE,
  "health/<deployment>/<revision>/<target>/<attempt>/<sequence>")``, where ``attempt`` is the apply
  followed and ``sequence`` counts the health events already recorded for it (handlers.followed,
  folded from the log into the applier's checkpointed state). A restart recomputes the same id for
  the same step, so a second append is a no-op or refused (``AlreadyRecorded``: the follower waits
  until its fold has the other event, then judges again); nothing is recorded twice, and since the
  follow resumes from the log, nothing is lost.
- **No applier slot**: following is waiting, not work; it runs beside the applier's passes in its
  own task group and never takes one of the ``applier_concurrency`` slots.
- **Supervised**: the follower runs under ledger.tasks.supervise (component ``applier-health``); a
  record that fails unexpectedly is logged and retried with backoff, and every informer retries on
  its own (handlers.watching).
- **Kinds without status** (ConfigMap, Secret, Namespace, RBAC, Ingress ... the built-in kinds the
  rules call current once applied) are not watched: they count as healthy once applied, and cost
  no connection. Kinds with a rule, and custom resources (a ``Ready`` condition), are watched.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import msgspec

from handlers import backoff, clients, followed, outcomes, tracking, watching
from ledger import components, events, records, store
from projections import health

log = logging.getLogger(__name__)

COMPONENT: Final = "applier-health"
RESTARTS: Final = "applier-health-record"
DEADLINE_REASON: Final = "ProgressDeadline"

# Built-in API groups: a kind of theirs without a rule in projections.health carries no status the
# rules read, so it is current once applied. Any other group is a custom resource: watched.
BUILTIN_GROUPS: Final = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "admissionregistration.k8s.io",
    "apiextensions.k8s.io", "apiregistration.k8s.io", "certificates.k8s.io", "node.k8s.io",
    "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
})


def watched(ref: events.ObjectRef) -> bool:
    """Whether ``ref``'s health needs its live status."""
    group = ref.api_version.rpartition("/")[0]
    return health.has_rule(ref.api_version, ref.kind) or group not in BUILTIN_GROUPS


def event_id(deployment: str, revision: int, target: str, attempt: int, sequence: int) -> uuid.UUID:
    return uuid.uuid5(outcomes.NAMESPACE, f"health/{deployment}/{revision}/{target}/{attempt}/{sequence}")


HealthEvent = events.TargetHealthy | events.TargetDegraded


def new_event(event: HealthEvent) -> records.NewEvent:
    return records.NewEvent(
        id=event_id(event.deployment, event.revision, event.target, event.attempt, event.sequence),
        type=events.type_name(event), data=events.to_data(event),
        metadata={"actor": outcomes.ACTOR, "client": outcomes.client_name()})


def judge(deployment: str, target: str, applied: followed.Applied, verdict: health.Verdict, *,
          deadline: int, now: float, watch_error: str | None = None) -> HealthEvent | None:
    """The health event to record now, if any (pure): ``verdict`` is the objects' health together."""
    sequence = applied.sequence + 1
    common: dict[str, Any] = {"deployment": deployment, "revision": applied.revision, "target": target,
                              "attempt": applied.attempt, "sequence": sequence}
    if verdict.status in (health.Status.HEALTHY, health.Status.SUSPENDED):
        if applied.verdict == "healthy":
            return None
        return events.TargetHealthy(objects=applied.objects, duration_ms=max(0, int((now - applied.at) * 1000)),
                                    **common)
    first = verdict.object or (applied.objects[0] if applied.objects else None)
    if first is None:
        return None
    if verdict.status is health.Status.DEGRADED:
        if applied.verdict == "degraded":
            return None
        return events.TargetDegraded(object=first, reason=verdict.reason or "Degraded",
                                     message=verdict.message, **common)
    if applied.verdict or now < applied.at + deadline:
        return None
    why = f"{verdict.reason}: {verdict.message}" if verdict.reason else verdict.message
    if watch_error:
        why = f"{why} ({watch_error})" if why else watch_error
    return events.TargetDegraded(object=first, reason=DEADLINE_REASON,
                                 message=f"not healthy {deadline}s after it was applied: {why}", **common)


class _Target(msgspec.Struct):
    deployment: str
    target: str


_decode_target: Final = msgspec.json.Decoder(_Target)


class Follow:
    """One deployment's objects on one target, for one apply."""

    def __init__(self, follower: Follower, deployment: str, target: str, applied: followed.Applied) -> None:
        self.follower = follower
        self.deployment = deployment
        self.target = target
        self.revision = applied.revision
        self.attempt = applied.attempt
        self.refs = list(applied.objects)
        self.names: dict[watching.Key, set[str]] = {}
        for ref in self.refs:
            if watched(ref):
                key = (target, ref.api_version, ref.kind, ref.namespace)
                self.names.setdefault(key, set()).add(ref.name)
        self.informers: dict[watching.Key, watching.Informer] = {}
        self.timer: asyncio.Handle | None = None
        self.recording = False
        self.again = False
        self.stopped = False
        self.failures = 0

    def same(self, applied: followed.Applied) -> bool:
        return (self.revision, self.attempt) == (applied.revision, applied.attempt)

    def start(self) -> None:
        for key in self.names:
            self.informers[key] = self.follower.watches.subscribe(key, self, self._listener(key))
        self.evaluate()

    def _listener(self, key: watching.Key) -> watching.Listener:
        names = self.names[key]

        def changed(name: str | None) -> None:
            if name is None or name in names:
                self.evaluate()

        return changed

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for key in self.informers:
            self.follower.watches.unsubscribe(key, self)
        self.informers.clear()

    def verdict(self) -> tuple[health.Verdict, str | None]:
        pairs: list[tuple[events.ObjectRef, dict[str, Any] | None]] = []
        error: str | None = None
        waiting: events.ObjectRef | None = None
        for ref in self.refs:
            if not watched(ref):
                continue
            informer = self.informers.get((self.target, ref.api_version, ref.kind, ref.namespace))
            if informer is None or not informer.synced:
                waiting = waiting or ref
                error = error or (informer.error if informer is not None else None)
                continue
            error = error or informer.error
            pairs.append((ref, informer.objects.get(ref.name)))
        found = health.aggregate(pairs)
        if waiting is not None and found.status is not health.Status.DEGRADED:
            return health.Verdict(health.Status.PROGRESSING, waiting, "NotListed",
                                  "the cluster has not been listed yet", objects=len(self.refs)), error
        return found, error

    def evaluate(self) -> None:
        if self.stopped:
            return
        if self.recording:
            self.again = True
            return
        applied = self.follower.applied(self.deployment, self.target)
        if applied is None or not self.same(applied):
            return
        now = self.follower.clock()
        deadline = self.follower.deadline(self.deployment, self.revision)
        verdict, error = self.verdict()
        event = judge(self.deployment, self.target, applied, verdict, deadline=deadline, now=now,
                      watch_error=error)
        if event is not None:
            self.recording = self.follower.spawn(self._record(event), f"health-record-{self.target}") is not None
            return
        if not applied.verdict and self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(
                max(0.0, applied.at + deadline - now), self._deadline)

    def _deadline(self) -> None:
        self.timer = None
        self.evaluate()

    async def _record(self, event: HealthEvent) -> None:
        retry: float | None = None
        try:
            await self.follower.record(event)
            self.failures = 0
        except Exception as exc:
            self.failures += 1
            retry = backoff.delay(self.failures, base=0.2, cap=10.0)
            if not self.follower.lost_database(exc):
                log.error("recording %s for %s on %s failed; retrying in %.1fs", events.type_name(event),
                          self.deployment, self.target, retry, exc_info=exc)
                self.follower.registry.count_restart(RESTARTS)
        finally:
            self.recording = False
            self.again = False
        if retry is not None:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = asyncio.get_running_loop().call_later(retry, self._deadline)
        else:
            self.evaluate()


class Follower:
    """Every follow of this applier process; ``run`` is its supervised lifetime."""

    def __init__(self, event_store: store.EventStore, state: Callable[[], tracking.State],
                 owns: Callable[[str], bool], client_for: Callable[[str], Awaitable[clients.Client]],
                 reach: Callable[[int], Awaitable[None]], registry: components.Registry, *,
                 clock: Callable[[], float] = time.time, lost_database: Callable[[BaseException], bool]) -> None:
        self._store = event_store
        self._state = state
        self._owns = owns
        self._client_for = client_for
        self._reach = reach
        self.registry = registry
        self.clock = clock
        self.lost_database = lost_database
        self._tg: asyncio.TaskGroup | None = None
        self.follows: dict[str, dict[str, Follow]] = {}  # target -> deployment -> follow
        self.watches = watching.Watches(client_for, registry, self.spawn)
        self.recorded = 0

    # ------------------------------------------------------------------ lifetime

    async def run(self) -> None:
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for target in list(self._state().fleet.targets):
                    self.reconcile(target)
                await stop.wait()
        finally:
            self._tg = None
            for by_deployment in self.follows.values():
                for follow in by_deployment.values():
                    follow.stop()
            self.follows.clear()
            self.watches.stop()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        """Run ``work`` in the follower's task group; None (``work`` closed) when it is stopping."""
        if self._tg is not None:
            try:
                return self._tg.create_task(work, name=name)
            except RuntimeError:  # the group is shutting down (a stop, or a restart after a crash)
                pass
        work.close()
        return None

    # ------------------------------------------------------------------ what to follow

    def applied(self, deployment: str, target: str) -> followed.Applied | None:
        return self._state().book.get(deployment, target)

    def deadline(self, deployment: str, revision: int) -> int:
        return followed.deadline(self._state().fleet, deployment, revision)

    def reconcile(self, target: str) -> None:
        """Follow exactly what ``target`` needs followed now (idempotent, cheap)."""
        if self._tg is None:
            return
        state = self._state()
        wanted = followed.wanted(state.fleet, state.book, target) if self._owns(target) else {}
        current = self.follows.get(target, {})
        for deployment in [d for d, f in current.items() if d not in wanted or not f.same(wanted[d])]:
            current.pop(deployment).stop()
        for deployment, applied in wanted.items():
            if deployment not in current:
                follow = Follow(self, deployment, target, applied)
                current[deployment] = follow
                self.follows[target] = current
                follow.start()
            else:
                current[deployment].evaluate()
        if not current:
            self.follows.pop(target, None)

    def touched(self, rec: records.RecordedEvent) -> None:
        """An outcome or health event was folded: its target may need following (or judging) anew."""
        try:
            found = _decode_target.decode(rec.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self.reconcile(found.target)

    async def record(self, event: HealthEvent) -> None:
        if not self._owns(event.target):
            return  # the new owner follows and records
        try:
            await outcomes.append(self._store, outcomes.stream(event.deployment), [new_event(event)])
        except outcomes.AlreadyRecorded as exc:
            log.info("%s; catching up before judging again", exc)
            await self._reach(exc.position)
            return
        followed.judged(self._state().book, event)
        self.recorded += 1

    def status(self) -> dict[str, Any]:
        return {"following": sum(len(f) for f in self.follows.values()), "recorded": self.recorded,
                **self.watches.status()}
