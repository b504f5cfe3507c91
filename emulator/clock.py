"""The wall-clock timestamps the emulator writes (creationTimestamp, conditions, managedFields).

Kubernetes stamps whole seconds, and formatting a time is surprisingly costly when 1,000 clusters
each write several objects at once, so the text is computed once per second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

_cached: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    global _cached
    second = int(time.time())
    if _cached[0] != second:
        _cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _cached[1]
