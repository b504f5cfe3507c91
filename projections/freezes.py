"""Freeze windows, pure: when a freeze holds, which targets it covers, and its fold.

A freeze (``FreezeSet`` in stream ``freeze-<name>``) names a label selector over targets and a
schedule: one window ``[from, until)``, or a recurring one: every time ``cron`` (five fields,
evaluated by cronsim in ``time_zone``, an IANA zone from zoneinfo) fires, a window opens for
``duration_seconds`` of elapsed time. Everything here takes the moment ``now`` as an argument and does
no I/O, so the applier's gate, the submission's refusal, the API listing and replay agree.

Decisions:

- **DST.** A cron time is local wall-clock time in ``time_zone``: ``0 22 * * *`` in Europe/Berlin
  opens at 21:00 UTC in winter and 20:00 UTC in summer. A local time that does not exist (spring
  forward) opens at the first minute after the gap; one that happens twice (fall back) opens once, at
  the first. This is Debian cron's behaviour, which cronsim implements. The window then lasts
  ``duration_seconds`` of real time, whatever the clocks do meanwhile.
- **Overlapping windows are one.** When windows of a freeze overlap or touch (a duration longer than
  the cron period), the freeze holds until the last of them closes (:func:`window_at` follows the
  chain, up to ``_CHAIN`` windows; past that the applier simply looks again then).
- **Bounds, at the door** (:func:`validate`): five cron fields that fire at least once in the coming
  years, a known zone, ``duration_seconds`` from 60 s to 31 days, ``from`` before ``until`` and a
  window of at most 366 days that has not ended. A freeze that somehow holds a bad schedule (a zone
  a later system lacks) covers nothing rather than breaking a fold.
- **The fold keeps removed freezes** (``removed``) so a name's history reads back in replay; they
  cover nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import cronsim
import msgspec

from ledger import events, hashing
from projections import selectors

MIN_DURATION: Final = 60
MAX_DURATION: Final = 31 * 86400
MAX_WINDOW: Final = dt.timedelta(days=366)
MAX_TEXT: Final = 1000
_CHAIN: Final = 64
_UTC: Final = dt.UTC


class Invalid(ValueError):
    """A freeze that cannot be set; ``field`` names the input at fault (``schedule.cron`` ...)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Freeze(msgspec.Struct, gc=False, array_like=True):
    """A freeze as the fold keeps it (also inside fleet snapshots: new fields go last, with defaults)."""

    name: str
    selector: str
    reason: str
    schedule: events.FreezeSchedule
    set_by: str | None = None
    set_at: dt.datetime | None = None
    version: int = 0
    position: int = 0
    removed: bool = False
    removed_by: str | None = None
    removed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Window:
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class Cover:
    """A freeze that covers a target now, and until when (the end of its current window)."""

    freeze: str
    until: dt.datetime


# --- zones and cron ------------------------------------------------------------------------------


@functools.cache
def _zones() -> frozenset[str]:
    # The IANA list the tzdata package ships, the same on every host. The system's zoneinfo
    # directory (zoneinfo.available_timezones) also offers "localtime", this host's /etc/localtime:
    # one logged freeze would then open at different times on different machines and in replay.
    return frozenset(importlib.resources.files("tzdata").joinpath("zones").read_text("utf-8").split())


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone ``name``, only from the list of known zones (a name never becomes a path)."""
    if name not in _zones():
        raise Invalid(f"{name[:100]!r} is not a known IANA time zone (e.g. Europe/Berlin, UTC)",
                      "schedule.time_zone")
    return zoneinfo.ZoneInfo(name)


def _fires(expr: str, moment: dt.datetime, *, reverse: bool = False) -> dt.datetime | None:
    """The next (or, reversed, the latest at or before ``moment``) time ``expr`` fires, in UTC."""
    start = moment.replace(microsecond=0) + dt.timedelta(seconds=1) if reverse else moment
    try:
        found: dt.datetime = next(iter(cronsim.CronSim(expr, start, reverse=reverse)))
    except (StopIteration, cronsim.CronSimError, ValueError, OverflowError):
        return None
    return found.astimezone(_UTC)


def _cron_window_at(schedule: events.FreezeSchedule, now: dt.datetime) -> Window | None:
    assert schedule.cron is not None and schedule.duration_seconds is not None
    try:
        tz = zoneinfo.ZoneInfo(schedule.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    duration = dt.timedelta(seconds=schedule.duration_seconds)
    local = now.astimezone(tz)
    start = _fires(schedule.cron, local, reverse=True)
    if start is None or start + duration <= now:
        return None
    end = start + duration
    cursor = start
    for _ in range(_CHAIN):
        following = _fires(schedule.cron, cursor.astimezone(tz))
        if following is None or following > end:
            break
        end = max(end, following + duration)
        cursor = following
    return Window(start, end)


def window_at(schedule: events.FreezeSchedule, now: dt.datetime) -> Window | None:
    """The window of ``schedule`` that holds at ``now`` (its start and when it closes), or None."""
    if schedule.cron is not None and schedule.duration_seconds is not None:
        return _cron_window_at(schedule, now)
    if schedule.from_ is not None and schedule.until is not None:
        if schedule.from_ <= now < schedule.until:
            return Window(schedule.from_, schedule.until)
    return None


def next_window(schedule: events.FreezeSchedule, now: dt.datetime) -> Window | None:
    """The next window that opens after ``now`` and after the one holding then (None: none will)."""
    if schedule.cron is not None and schedule.duration_seconds is not None:
        try:
            tz = zoneinfo.ZoneInfo(schedule.time_zone or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return None
        current = _cron_window_at(schedule, now)
        start = _fires(schedule.cron, (current.end if current is not None else now).astimezone(tz))
        return _cron_window_at(schedule, start) if start is not None else None
    if schedule.from_ is not None and schedule.until is not None and now < schedule.from_:
        return Window(schedule.from_, schedule.until)
    return None


# --- validation at the door ----------------------------------------------------------------------


def validate(selector: str, reason: str, schedule: events.FreezeSchedule, now: dt.datetime) -> tuple[
        str, events.FreezeSchedule]:
    """The selector (canonical) and schedule to record, or :class:`Invalid` /
    ``selectors.SelectorError`` naming the field."""
    if not reason.strip():
        raise Invalid("say why the freeze is set (it is recorded and shown to whoever it holds up)", "reason")
    if len(reason) > MAX_TEXT:
        raise Invalid(f"at most {MAX_TEXT} characters", "reason")
    canonical = str(selectors.parse(selector, field="selector")) if selector else ""
    recurring = (schedule.cron, schedule.duration_seconds, schedule.time_zone)
    once = (schedule.from_, schedule.until)
    if any(v is not None for v in recurring) and any(v is not None for v in once):
        raise Invalid("send either {cron, duration_seconds, time_zone} or {from, until}, not both", "schedule")
    if any(v is not None for v in recurring):
        return canonical, _recurring(schedule, now)
    if any(v is not None for v in once):
        return canonical, _once(schedule, now)
    raise Invalid("send {cron, duration_seconds, time_zone} or {from, until}", "schedule")


def _recurring(schedule: events.FreezeSchedule, now: dt.datetime) -> events.FreezeSchedule:
    if schedule.cron is None:
        raise Invalid("a recurring freeze needs cron (five fields, e.g. '0 22 * * FRI')", "schedule.cron")
    if schedule.duration_seconds is None:
        raise Invalid("a recurring freeze needs duration_seconds", "schedule.duration_seconds")
    expr = " ".join(schedule.cron.split())
    if len(expr) > 200 or len(expr.split(" ")) != 5:
        raise Invalid(f"expected five cron fields (minute hour day-of-month month day-of-week), got "
                      f"{schedule.cron[:100]!r}", "schedule.cron")
    try:
        cronsim.CronSim(expr, now)
    except cronsim.CronSimError as exc:
        raise Invalid(f"{exc} in {expr!r}", "schedule.cron") from exc
    if not MIN_DURATION <= schedule.duration_seconds <= MAX_DURATION:
        raise Invalid(f"must be from {MIN_DURATION} to {MAX_DURATION} ({MAX_DURATION // 86400} days), got "
                      f"{schedule.duration_seconds}", "schedule.duration_seconds")
    name = schedule.time_zone or "UTC"
    tz = zone(name)
    if _fires(expr, now.astimezone(tz)) is None:
        raise Invalid(f"{expr!r} never fires", "schedule.cron")
    return events.FreezeSchedule(cron=expr, duration_seconds=schedule.duration_seconds, time_zone=name)


def _once(schedule: events.FreezeSchedule, now: dt.datetime) -> events.FreezeSchedule:
    for field, value in (("from", schedule.from_), ("until", schedule.until)):
        if value is None:
            raise Invalid(f"a one-off freeze needs {field} (an RFC 3339 time)", f"schedule.{field}")
        if value.tzinfo is None:
            raise Invalid("needs a UTC offset (e.g. 2026-11-27T00:00:00Z)", f"schedule.{field}")
    assert schedule.from_ is not None and schedule.until is not None
    start, end = _utc(schedule.from_, "from"), _utc(schedule.until, "until")
    if start >= end:
        raise Invalid(f"must be before until ({hashing.format_time(end)})", "schedule.from")
    if end - start > MAX_WINDOW:
        raise Invalid(f"a window lasts at most {MAX_WINDOW.days} days", "schedule.until")
    if end <= now:
        raise Invalid(f"{hashing.format_time(end)} has passed", "schedule.until")
    return events.FreezeSchedule(from_=start, until=end)


def _utc(moment: dt.datetime, field: str) -> dt.datetime:
    try:
        return moment.astimezone(_UTC)
    except OverflowError as exc:
        raise Invalid("is out of range in UTC (years 1 to 9999)", f"schedule.{field}") from exc


# --- the fold ------------------------------------------------------------------------------------


def fold(freezes: dict[str, Freeze], event: events.FreezeSet | events.FreezeRemoved, position: int,
         version: int, recorded_at: dt.datetime, actor: str | None) -> None:
    if isinstance(event, events.FreezeSet):
        freezes[event.name] = Freeze(
            name=event.name, selector=event.selector, reason=event.reason, schedule=event.schedule,
            set_by=actor, set_at=recorded_at, version=version, position=position)
        return
    found = freezes.get(event.name)
    if found is not None:
        found.removed = True
        found.removed_by = actor
        found.removed_at = recorded_at
        found.version = version
        found.position = position


@functools.lru_cache(maxsize=1024)
def _selector(text: str) -> selectors.Selector | None:
    try:
        return selectors.parse(text)
    except selectors.SelectorError:
        return None


def selects(freeze: Freeze, labels: Mapping[str, str]) -> bool:
    chosen = _selector(freeze.selector)
    return chosen is not None and chosen.matches(labels)


def covering(freezes: Mapping[str, Freeze], labels: Mapping[str, str], now: dt.datetime) -> list[Cover]:
    """The freezes that hold a target with ``labels`` at ``now``, by name."""
    found = []
    for name in sorted(freezes):
        freeze = freezes[name]
        if freeze.removed or not selects(freeze, labels):
            continue
        window = window_at(freeze.schedule, now)
        if window is not None:
            found.append(Cover(name, window.end))
    return found


def schedule_view(schedule: events.FreezeSchedule) -> dict[str, Any]:
    if schedule.cron is not None:
        return {"cron": schedule.cron, "duration_seconds": schedule.duration_seconds,
                "time_zone": schedule.time_zone}
    return {"from": _time(schedule.from_), "until": _time(schedule.until)}


def _time(moment: dt.datetime | None) -> str | None:
    return hashing.format_time(moment) if moment is not None else None


def view(freeze: Freeze, now: dt.datetime | None = None, covers: Iterable[str] | None = None) -> dict[str, Any]:
    """What the API shows of a freeze; with ``now``, whether it holds then and its next window; with
    ``covers``, the live targets its selector matches."""
    found: dict[str, Any] = {
        "name": freeze.name,
        "selector": freeze.selector,
        "reason": freeze.reason,
        "schedule": schedule_view(freeze.schedule),
        "removed": freeze.removed,
        "set_by": freeze.set_by,
        "set_at": _time(freeze.set_at),
        "removed_by": freeze.removed_by,
        "removed_at": _time(freeze.removed_at),
        "version": freeze.version,
        "position": freeze.position,
    }
    if now is not None:
        current = None if freeze.removed else window_at(freeze.schedule, now)
        coming = None if freeze.removed else next_window(freeze.schedule, now)
        found["active"] = current is not None
        found["window"] = {"start": _time(current.start), "end": _time(current.end)} if current else None
        found["next_window"] = {"start": _time(coming.start), "end": _time(coming.end)} if coming else None
    if covers is not None:
        found["targets"] = sorted(covers)
    return found
