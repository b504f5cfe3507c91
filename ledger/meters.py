"""Plain measurements that components keep for the metrics endpoint: a latency histogram and the
times the log's head moved, for the projector's lag in seconds.

They hold numbers only; names, help texts and the exposition are api/metrics.py's, the one module
that defines metrics, so a component keeps its counts whichever process it runs in and costs its
hot path an increment or two.
"""

from __future__ import annotations

import bisect
import collections
from typing import Final

# Seconds: from a fast cluster's apply (tens of ms) to one that ends in the apply timeout.
APPLY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """Counts of observations per bucket (upper bounds, ``le``), their sum and their number."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf only)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, observations at or below it)``, the last ``le`` being +Inf."""
        running = 0
        found: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            found.append((bound, running))
        return found


class HeadTimes:
    """When the log's head passed each position this process heard of (monotonic seconds), to say
    since when the oldest event a reader has not seen has been waiting.

    One entry per head notification while a reader is behind; entries at or below what every
    reader has seen are dropped by :meth:`since`. Past ``limit`` entries the second-oldest goes,
    so the oldest stays exact and the rest coarsen (a lag after a long stall may read a little low).
    """

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._entries: collections.deque[tuple[int, float]] = collections.deque()
        self._limit = limit

    def moved(self, head: int, now: float) -> None:
        entries = self._entries
        if entries and entries[-1][0] >= head:
            return
        entries.append((head, now))
        if len(entries) > self._limit:
            first = entries.popleft()
            entries.popleft()
            entries.appendleft(first)

    def since(self, seen: int) -> float | None:
        """When the first position after ``seen`` was notified; None when nothing is after it."""
        entries = self._entries
        while entries and entries[0][0] <= seen:
            entries.popleft()
        return entries[0][1] if entries else None
