"""What every long-running part of the process is doing right now, for readiness and metrics.

One registry per process (per app): supervised tasks (ledger/tasks.py), the projector, the
applier's per-target workers, the database probe and the embedded PostgreSQL watcher report into
it; ``/readyz`` reads it without any I/O, so readiness answers at once whatever the database does,
and ``/metrics`` exports it. A component is ``up``, ``restarting`` (it crashed; the last error is
kept), ``stalled`` (it runs but cannot advance: where and why are kept) or ``down`` (gone or
unreachable, and why). Only ``up`` is ready. Restarts are counted per component name and never
reset, as a Prometheus counter must be.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import time
import traceback
from typing import Any


class Status(enum.StrEnum):
    UP = "up"
    RESTARTING = "restarting"
    STALLED = "stalled"
    DOWN = "down"


@dataclasses.dataclass
class Component:
    name: str
    status: Status
    since: float
    reason: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self, now: float) -> dict[str, Any]:
        found: dict[str, Any] = {"status": self.status.value, "for_seconds": round(now - self.since, 1)}
        if self.reason is not None:
            found["reason"] = self.reason
        found.update(self.detail)
        return found


def error_text(exc: BaseException) -> str:
    """One line naming an exception: its type and the first line of its message (never a traceback);
    for a group (a TaskGroup's), its first error."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return "".join(traceback.format_exception_only(exc)).strip().splitlines()[0]


class Registry:
    def __init__(self) -> None:
        self._components: dict[str, Component] = {}
        self.restarts: collections.Counter[str] = collections.Counter()

    def _set(self, name: str, status: Status, reason: str | None, detail: dict[str, Any]) -> None:
        current = self._components.get(name)
        since = current.since if current is not None and current.status is status else time.monotonic()
        self._components[name] = Component(name, status, since, reason, detail)

    def up(self, name: str, **detail: Any) -> None:
        self._set(name, Status.UP, None, detail)

    def restarting(self, name: str, error: BaseException | str, **detail: Any) -> None:
        self._set(name, Status.RESTARTING, error if isinstance(error, str) else error_text(error), detail)

    def stalled(self, name: str, reason: str, **detail: Any) -> None:
        self._set(name, Status.STALLED, reason, detail)

    def down(self, name: str, reason: str, **detail: Any) -> None:
        self._set(name, Status.DOWN, reason, detail)

    def recovered(self, name: str) -> None:
        """A restarted component has stayed up long enough: restarting becomes up (any other
        status the component reported itself, such as stalled, stands)."""
        current = self._components.get(name)
        if current is not None and current.status is Status.RESTARTING:
            self.up(name)

    def count_restart(self, name: str) -> None:
        self.restarts[name] += 1

    def forget(self, name: str) -> None:
        """The component is gone on purpose (stopped, or a per-target entry that recovered)."""
        self._components.pop(name, None)

    def get(self, name: str) -> Component | None:
        return self._components.get(name)

    def all(self) -> list[Component]:
        return sorted(self._components.values(), key=lambda c: c.name)

    def not_ready(self) -> dict[str, dict[str, Any]]:
        """Every component that is not up, by name, with what it is doing and why."""
        now = time.monotonic()
        return {c.name: c.describe(now) for c in self.all() if c.status is not Status.UP}
