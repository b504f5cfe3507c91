"""Per-stream locks: commands on one stream in one process queue instead of racing each other.

Racing is still correct (the append's expected version catches it and the command is decided
again), but twelve concurrent submissions to one deployment would otherwise spend most of their
time losing races. Locks live only while someone holds or waits for them.
"""

from __future__ import annotations

import asyncio
import weakref


class StreamLocks:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, stream: str) -> asyncio.Lock:
        lock = self._locks.get(stream)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[stream] = lock
        return lock
