"""Injected failures for one emulated cluster.

A :class:`Fault` matches requests by HTTP method and/or a substring of the
cluster-relative path (e.g. ``/api/v1/namespaces/ns/configmaps``) and, for
``count`` matching requests or until cleared, does one of:

* answer with ``status`` and a proper ``Status`` body (429 adds a
  ``Retry-After`` header and ``details.retryAfterSeconds``);
* wait ``delay`` seconds first (with no ``status``/``drop`` the request is then
  served normally, so the write still lands, as on a slow real API server);
* ``drop`` the connection without answering;
* for a watch (``watch=True`` matches only ``?watch=true`` requests, ``watch=False`` only the
  others), ``drop_after`` seconds: the stream starts, delivers events, and then its connection is
  cut mid-stream, as a restarting apiserver or an idle-timeout load balancer would.

Faults are checked in the order they were added; the first match wins.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.routing import ITEM, Target
from emulator.status import ApiError, reason_for, resource_details

_ids = itertools.count(1)


@dataclass(slots=True)
class Fault:
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    method: str | None = None
    path: str | None = None
    count: int | None = None
    retry_after: int | None = None
    reason: str | None = None
    message: str | None = None
    watch: bool | None = None
    drop_after: float | None = None
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def __post_init__(self) -> None:
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP error code (400-599)")
        if self.delay < 0:
            raise ValueError("fault delay must be >= 0")
        if self.count is not None and self.count < 1:
            raise ValueError("fault count must be >= 1 (or None for 'until cleared')")
        if self.drop_after is not None and (self.watch is not True or self.drop_after < 0):
            raise ValueError("drop_after (seconds >= 0) cuts a watch stream: it needs watch=True")
        if self.status is None and not self.drop and not self.delay and self.drop_after is None:
            raise ValueError("a fault needs a status, a delay, drop=True or drop_after")
        if self.status is not None and self.drop:
            raise ValueError("a fault cannot both answer with a status and drop the connection")
        if self.method:
            self.method = self.method.upper()
        if self.status == 429 and self.retry_after is None:
            self.retry_after = 1

    def matches(self, method: str, path: str, watch: bool = False) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.watch is not None and self.watch != watch:
            return False
        return self.path is None or self.path in path

    def error(self, method: str, target: Target | None = None) -> ApiError:
        """The Status error this fault answers with (``status`` must be set).

        When the request addressed a resource, message and details name it the
        way the real API server would (e.g. ``configmaps "x" is forbidden: ...``).
        """
        assert self.status is not None
        code = self.status
        reason = self.reason or reason_for(code)
        message = self.message or _default_message(code, method, target)
        details: dict[str, Any] = {}
        if target is not None and target.rt is not None:
            details = resource_details(target.rt, target.name or "")
            if code == 422:
                details["kind"] = target.rt.kind
                details["causes"] = [
                    {
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: injected fault",
                        "field": "metadata",
                    }
                ]
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
            headers["Retry-After"] = str(self.retry_after)
        return ApiError(code, reason, message, details, headers)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        allowed = {
            "status",
            "delay",
            "drop",
            "method",
            "path",
            "count",
            "retry_after",
            "retryAfter",
            "reason",
            "message",
            "watch",
            "drop_after",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        retry = data.get("retry_after", data.get("retryAfter"))
        return cls(
            status=_opt_int(data.get("status")),
            delay=float(data.get("delay") or 0.0),
            drop=bool(data.get("drop", False)),
            method=_opt_str(data.get("method")),
            path=_opt_str(data.get("path")),
            count=_opt_int(data.get("count")),
            retry_after=_opt_int(retry),
            reason=_opt_str(data.get("reason")),
            message=_opt_str(data.get("message")),
            watch=None if data.get("watch") is None else bool(data["watch"]),
            drop_after=None if data.get("drop_after") is None else float(data["drop_after"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "delay": self.delay,
            "drop": self.drop,
            "method": self.method,
            "path": self.path,
            "count": self.count,
            "retry_after": self.retry_after,
            "reason": self.reason,
            "message": self.message,
            "watch": self.watch,
            "drop_after": self.drop_after,
            "hits": self.hits,
        }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _default_message(code: int, method: str, target: Target | None) -> str:
    what = target.describe() if target is not None else ""
    if code == 429:
        return "Too many requests, please try again later."
    if code == 403 and target is not None and target.rt is not None:
        rt = target.rt
        verb = _VERBS.get(method, method.lower())
        if target.what != ITEM:
            verb = {"get": "list", "delete": "deletecollection"}.get(verb, verb)
        where = f' in the namespace "{target.namespace}"' if target.namespace else ""
        return (
            f'{what} is forbidden: User "system:serviceaccount:ledger:deployer" cannot {verb} resource '
            f'"{rt.plural}" in API group "{rt.group}"{where}'
        )
    if code == 422 and target is not None and target.rt is not None:
        return f'{target.rt.kind} "{target.name or ""}" is invalid: metadata: Invalid value: injected fault'
    if code >= 500:
        return f"Internal error occurred: injected fault ({what or 'request'})"
    return f"injected fault ({what or 'request'})"


class FaultSet:
    """The active faults of one cluster, consumed as requests match them."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, path: str, *, watch: bool = False) -> Fault | None:
        """The first fault matching this request, counting the hit against it."""
        if not self._faults:
            return None
        for fault in self._faults:
            if fault.matches(method, path, watch):
                fault.hits += 1
                if fault.count is not None and fault.hits >= fault.count:
                    self._faults.remove(fault)
                return fault
        return None

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults))

    def __len__(self) -> int:
        return len(self._faults)

    def __bool__(self) -> bool:
        return bool(self._faults)
