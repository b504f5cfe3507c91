"""Change history and open watches of one emulated cluster.

A real API server answers ``?watch=true&resourceVersion=N`` from its watch cache: every change after
N, in order, or ``410 Gone`` (reason ``Expired``) when N is older than what the cache still holds.
:class:`Hub` is that cache. Every write of the cluster publishes a :class:`Change` here
synchronously (inside the same event-loop step as the write), so a watcher that subscribes and reads
the backlog without awaiting in between can neither miss a change nor see one twice.

Decisions:

- **Bounded history** (``history`` changes per cluster, oldest evicted first): an evicted change
  raises the floor below which a watch is expired. :meth:`Hub.compact` raises it at once, as etcd
  compaction does, so tests need not write a thousand objects to see 410.
- **Changes share the stored objects**, never copies: the cluster replaces an object on every write
  and never mutates a stored one, so keeping references is both safe and cheap for 1,000 clusters.
- **Selector transitions** follow the apiserver's cacher: an object that stops matching a watch's
  selector is delivered as ``DELETED``, one that starts matching as ``ADDED``.
- **Watchers are queues**, woken only by changes (and by the stream's own timers for bookmarks and
  timeouts): an idle cluster costs nothing per object.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.catalog import ResourceType

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
DEFAULT_HISTORY = 1000

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Change:
    rv: int
    type: str
    rt: ResourceType
    obj: dict[str, Any]
    prev: dict[str, Any] | None = None


class Expired(Exception):
    """The requested resourceVersion is older than the history holds."""

    def __init__(self, requested: int, floor: int) -> None:
        super().__init__(f"too old resource version: {requested} ({floor})")
        self.requested = requested
        self.floor = floor


@dataclass(eq=False, slots=True)
class Watcher:
    """One open watch: what it selects and the events waiting to be sent."""

    rt: ResourceType
    namespace: str | None
    predicate: Predicate | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=asyncio.Queue)

    def _matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj.get("metadata", {}).get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(obj)

    def translate(self, change: Change) -> tuple[str, dict[str, Any]] | None:
        """The event this watcher sees for ``change`` (apiserver cacher semantics), or None."""
        if change.rt is not self.rt:
            return None
        now = self._matches(change.obj)
        if change.type == DELETED:
            return (DELETED, change.obj) if now else None
        before = self._matches(change.prev)
        if now:
            return (MODIFIED if before else ADDED, change.obj)
        return (DELETED, change.obj) if before else None

    def offer(self, change: Change) -> None:
        event = self.translate(change)
        if event is not None:
            self.queue.put_nowait(event)

    def drop(self) -> None:
        """End this watch abruptly (the stream closes its connection without a final chunk)."""
        self.queue.put_nowait(None)


class Hub:
    """History of changes and the set of open watches for one cluster."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._log: deque[Change] = deque()
        self._history = history
        self._floor = 0
        self._watchers: set[Watcher] = set()

    @property
    def history(self) -> int:
        return self._history

    @history.setter
    def history(self, size: int) -> None:
        if size < 1:
            raise ValueError("watch history must hold at least one change")
        self._history = size
        self._trim()

    @property
    def floor(self) -> int:
        """Watches from a resourceVersion below this are expired."""
        return self._floor

    def _trim(self) -> None:
        while len(self._log) > self._history:
            self._floor = self._log.popleft().rv

    def publish(self, change: Change) -> None:
        self._log.append(change)
        self._trim()
        for watcher in self._watchers:
            watcher.offer(change)

    def since(self, rv: int) -> Iterable[Change]:
        """Every retained change after ``rv``; Expired if some of them were evicted."""
        if rv < self._floor:
            raise Expired(rv, self._floor)
        return [c for c in self._log if c.rv > rv]

    def compact(self, rv: int) -> None:
        """Forget history up to ``rv`` (etcd compaction): watches from before it get 410."""
        while self._log and self._log[0].rv <= rv:
            self._log.popleft()
        self._floor = max(self._floor, rv)

    def subscribe(self, watcher: Watcher) -> Watcher:
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def drop_all(self) -> int:
        """Cut every open watch; returns how many there were."""
        dropped = list(self._watchers)
        for watcher in dropped:
            watcher.drop()
        return len(dropped)

    def __len__(self) -> int:
        return len(self._watchers)
