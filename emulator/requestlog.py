"""What each emulated cluster was asked, for tests to assert on.

Every request that reaches a cluster (including ones answered by a fault or
dropped) is recorded with its method, cluster-relative path, query, body and
the status that was sent back (``None`` when the connection was dropped).
The log is bounded so a long-running ``ledger demo`` cannot grow without
limit.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    status: int | None
    query: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    body: bytes = b""
    fault: str | None = None  # "status", "delay", "drop", "down" when a fault shaped the answer

    def json(self) -> Any:
        """The request body decoded as JSON, or YAML for apply bodies (None when empty)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return yaml.safe_load(self.body)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "query": self.query,
            "contentType": self.content_type,
            "body": self.body.decode("utf-8", "replace"),
            "fault": self.fault,
        }


class RequestLog:
    def __init__(self, limit: int = 10_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)

    def append(self, record: RequestRecord) -> None:
        self._records.append(record)

    def clear(self) -> None:
        self._records.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def matching(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Records whose method equals ``method`` and whose path contains ``path``."""
        return [
            r
            for r in self._records
            if (method is None or r.method == method.upper()) and (path is None or path in r.path)
        ]
