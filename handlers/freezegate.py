"""The applier's freeze gate: what of a target's planned work a freeze lets through now.

tracking.plan says what a target needs to converge; this filter takes out the revisions a freeze
holds there (projections/freezerules.py decides, from the folded fleet and the clock) and, on a
resync pass, puts in the re-apply of the revision the target keeps, so drift healing goes on during a
freeze. It also says when the earliest hold ends: the applier sets a timer for that moment (no
polling), and a FreezeSet or FreezeRemoved passes every target again (tracking.fold).
"""

from __future__ import annotations

import datetime as dt

from handlers import tracking
from projections import freezerules


def admit(state: tracking.State, target: str, planned: list[tracking.Work], now: dt.datetime, *,
          resync: bool) -> tuple[list[tracking.Work], dt.datetime | None]:
    """The work that may go ahead at ``now``, and when the earliest hold ends (None: nothing held)."""
    admitted: list[tracking.Work] = []
    lifts: dt.datetime | None = None
    for work in planned:
        held = freezerules.hold(state.fleet, work.deployment, target, now, work.revision) if work.revision else None
        if held is None:
            admitted.append(work)
            continue
        lifts = held.until if lifts is None else min(lifts, held.until)
        keep = freezerules.kept(state.fleet, work.deployment, target)
        if resync and keep:
            pair = state.pairs.get(work.deployment, {}).get(target)
            attempt = (pair.attempts.get(keep, 0) if pair is not None else 0) + 1
            admitted.append(tracking.Work(work.deployment, keep, attempt, resync=True))
    return admitted, lifts
