"""What the health follower needs to remember, folded from the log: per deployment and target, the
apply it follows and the health events already recorded for it.

Kept inside the applier's state (handlers.tracking, saved in its checkpoint), because a restart
must know, without reading the whole log again, which objects the last successful apply touched,
when it was recorded (the progress deadline counts from then, whoever recorded it), and how many
health events that apply already has (the next one's id depends on it, handlers.follow).

Pure: no I/O, no clock (times come from the events' ``recorded_at`` or from the caller).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from ledger import events
from projections import fleet

Verdict = Literal["", "healthy", "degraded"]
TYPES: Final = frozenset({"ApplySucceeded", "TargetHealthy", "TargetDegraded"})


class Applied(msgspec.Struct, array_like=True, gc=False):
    """The last successful apply of a revision (not a prune) on one target, and its health so far."""

    revision: int
    attempt: int
    objects: list[events.ObjectRef]
    at: float  # when the outcome was recorded (seconds since the epoch)
    sequence: int = 0  # health events recorded for this apply
    verdict: Verdict = ""


class Book(msgspec.Struct, array_like=True):
    applied: dict[str, dict[str, Applied]] = {}  # deployment -> target -> apply

    def get(self, deployment: str, target: str) -> Applied | None:
        return self.applied.get(deployment, {}).get(target)


def succeeded(book: Book, outcome: events.ApplySucceeded, at: float) -> None:
    """An apply succeeded: follow it from now on (a prune, revision 0, leaves nothing to follow)."""
    by_target = book.applied.setdefault(outcome.deployment, {})
    if outcome.revision == 0:
        by_target.pop(outcome.target, None)
        return
    found = by_target.get(outcome.target)
    if found is not None and (found.revision, found.attempt) == (outcome.revision, outcome.attempt):
        found.at = at  # the same outcome, now with the time the log gave it
        return
    by_target[outcome.target] = Applied(outcome.revision, outcome.attempt, list(outcome.objects), at)


def judged(book: Book, event: events.TargetHealthy | events.TargetDegraded) -> None:
    """A health event about an apply: the next one is numbered after it."""
    found = book.get(event.deployment, event.target)
    if found is None or (found.revision, found.attempt) != (event.revision, event.attempt):
        return
    if event.sequence >= found.sequence:
        found.sequence = event.sequence
        found.verdict = "healthy" if isinstance(event, events.TargetHealthy) else "degraded"


def forget_target(book: Book, target: str) -> None:
    for by_target in book.applied.values():
        by_target.pop(target, None)


def wanted(state: fleet.Fleet, book: Book, target: str) -> dict[str, Applied]:
    """Deployment -> the apply to follow on ``target`` now: the current revision's last successful
    apply, while that is the last outcome recorded for it and the deployment is not paused."""
    found: dict[str, Applied] = {}
    for name, by_target in book.applied.items():
        applied = by_target.get(target)
        deployment = state.deployments.get(name)
        if applied is None or deployment is None or deployment.removed or deployment.paused:
            continue
        rollout = deployment.rollouts.get(target)
        if (rollout is not None and rollout.desired_revision == applied.revision
                and rollout.outcome == "succeeded" and rollout.attempts == applied.attempt):
            found[name] = applied
    return found


def deadline(state: fleet.Fleet, deployment: str, revision: int) -> int:
    """The revision's progress deadline in seconds."""
    found = state.deployments.get(deployment)
    known = found.revisions.get(revision) if found is not None else None
    return known.progress_deadline_seconds if known is not None else events.PROGRESS_DEADLINE_SECONDS
