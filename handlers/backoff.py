"""How long to wait before the next attempt after a temporary failure.

Capped exponential backoff with "equal jitter": attempt ``n`` waits between half and all of
``min(cap, base * 2**(n-1))``. Half the delay is fixed so retries never bunch at zero; the other
half is random so a fleet that failed together (an API gateway restart) does not retry together.
A server's Retry-After is honoured as a floor — we never come back sooner than asked — but is
capped too, so a misconfigured server cannot park a target for a day.
"""

from __future__ import annotations

import random


def delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
          rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    draw = (rng or random).random()
    exponent = min(max(attempt, 1) - 1, 62)
    ceiling = min(cap, base * (2.0 ** exponent))
    wait = ceiling / 2 + draw * ceiling / 2
    if retry_after is not None:
        wait = max(wait, min(retry_after, cap))
    return max(0.0, min(wait, cap))
