"""Drift: a live object that no longer is what the ledger applied, and when that is news.

Pure (handlers.compare does the looking). Decisions:

- **What differs** (:func:`differences`) is every leaf of the object — a value that is not a
  non-empty map; lists count whole — whose value differs between the object as it is and as a
  server-side apply of its revision would leave it. ``status`` and the metadata the server keeps
  (resourceVersion, managedFields, generation, uid, creationTimestamp) are not compared. A path
  is written with dots, a key that holds a dot in brackets: ``data.v``,
  ``metadata.labels[ledger.dev/revision]``; at most ``MAX_FIELDS`` are named. A deleted object
  is the one field ``(deleted)``.
- **One event per occurrence.** An occurrence is one object drifted in one set of fields, from
  the resync that finds it until the object is as applied again. The applier's fold remembers, per
  deployment and target, each object's last recorded drift (tracking.Pair.drift); a resync records
  ``DriftDetected`` only for drift not remembered with the same fields. An ``ApplySucceeded``
  after it ends every remembered occurrence (the heal, or any later apply: each one force-applies
  every object). Without healing (``self_heal: false``) nothing is recorded when someone puts an
  object back by hand; the process that sees it back in sync remembers that (``settled``, the
  positions of occurrences it saw end), so the same drift coming back is a new occurrence.
- **Ids** are ``uuid5(NAMESPACE, "drift/<deployment>/<revision>/<target>/<n>")``, ``n`` counting
  the pair's DriftDetected events in the log: a crash after the append, or two processes briefly
  owning one target, cannot record an occurrence twice (same id and content: a no-op; other
  content: a conflict, after which the applier reads the log and decides again).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from handlers import outcomes, tracking
from ledger import events, records

DELETED: Final = "(deleted)"
MAX_FIELDS: Final = 50
NAMESPACE: Final = outcomes.NAMESPACE
_SERVER_KEPT: Final = frozenset({
    ("metadata", "resourceVersion"), ("metadata", "managedFields"), ("metadata", "generation"),
    ("metadata", "uid"), ("metadata", "creationTimestamp"), ("metadata", "selfLink"), ("status",),
})
_MISSING: Final = object()

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Found:
    ref: events.ObjectRef
    fields: list[str]


key = tracking.object_key


def _leaves(obj: Mapping[str, Any], prefix: Path, out: dict[Path, Any]) -> None:
    for name, value in obj.items():
        path = (*prefix, name)
        if path in _SERVER_KEPT:
            continue
        if isinstance(value, dict) and value:
            _leaves(value, path, out)
        else:
            out[path] = value


def render(path: Path) -> str:
    text = ""
    for name in path:
        if "." in name or not name:
            text += f"[{name}]"
        else:
            text += f".{name}" if text else name
    return text


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The fields whose values differ between two states of one object, sorted."""
    was: dict[Path, Any] = {}
    now: dict[Path, Any] = {}
    _leaves(before, (), was)
    _leaves(after, (), now)
    paths = sorted(p for p in was.keys() | now.keys() if was.get(p, _MISSING) != now.get(p, _MISSING))
    named = [render(p) for p in paths]
    if len(named) > MAX_FIELDS:
        return [*named[:MAX_FIELDS - 1], f"(and {len(named) - MAX_FIELDS + 1} more)"]
    return named


def news(remembered: Mapping[str, tracking.Seen], settled: set[int], drifted: Iterable[Found],
         in_sync: Iterable[str]) -> tuple[list[Found], set[int]]:
    """Which drift is a new occurrence, and the positions of remembered occurrences now ended
    (objects found as applied); ``settled`` holds those seen to end before."""
    ended = {seen.position for k in in_sync if (seen := remembered.get(k)) is not None}
    gone = settled | ended
    new = []
    for found in drifted:
        seen = remembered.get(key(found.ref))
        if seen is None or seen.position in gone or seen.fields != found.fields:
            new.append(found)
    return new, ended


def event_id(deployment: str, revision: int, target: str, n: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"drift/{deployment}/{revision}/{target}/{n}")


def detected(deployment: str, revision: int, target: str, found: Found) -> events.DriftDetected:
    return events.DriftDetected(deployment=deployment, revision=revision, target=target, object=found.ref,
                                fields=list(found.fields))


def new_events(pair: tracking.Pair, drifts: Sequence[events.DriftDetected]) -> list[records.NewEvent]:
    """The events to append for ``drifts`` of one pair, numbered after those already folded."""
    return [records.NewEvent(
        id=event_id(d.deployment, d.revision, d.target, pair.drifts + i),
        type=events.type_name(d), data=events.to_data(d),
        metadata={"actor": outcomes.ACTOR, "client": outcomes.client_name()},
    ) for i, d in enumerate(drifts, start=1)]
