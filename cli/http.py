"""The CLI's side of HTTP: requests to the ledger API with urllib, problems as clean errors, tables.

Decisions:

- urllib, not aiohttp: a command makes a handful of sequential requests, and blocking code keeps
  the commands plain functions.
- Every write carries an ``Idempotency-Key`` made once per invocation, so a write whose answer was
  lost (connection reset, 502/503/504) is safely sent again, up to ``RETRIES`` times, and never
  recorded twice.
- A problem+json answer becomes :class:`ApiError` carrying the server's title, detail and field;
  the command prints it and exits non-zero.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

DEFAULT_URL: Final = "http://127.0.0.1:8080"
RETRIES: Final = 3
_RETRY_STATUSES: Final = frozenset({502, 503, 504})


class ApiError(Exception):
    """The API refused a request (``status`` > 0) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str, problem: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problem = dict(problem or {})


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _problem_message(status: int, body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        problem = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body.decode('utf-8', 'replace').strip()[:500]}", {}
    if not isinstance(problem, dict):
        return f"HTTP {status}", {}
    title = problem.get("title") or f"HTTP {status}"
    detail = problem.get("detail") or ""
    return f"{status} {title}: {detail}" if detail else f"{status} {title}", problem


@dataclass
class Client:
    base_url: str = DEFAULT_URL
    timeout: float = 30.0
    actor: str | None = None
    sleep: float = 0.5
    default_headers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return self.base_url.rstrip("/") + path + suffix

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, data: bytes | None = None, content_type: str | None = None,
                accept: str = "application/json", headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {"Accept": accept, "User-Agent": "ledger-cli", **self.default_headers, **(headers or {})}
        if self.actor:
            all_headers["X-Actor"] = self.actor
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            all_headers["Content-Type"] = content_type
        write = method not in ("GET", "HEAD")
        if write:
            all_headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        target = self.url(path, params)
        for attempt in range(RETRIES + 1):
            request = urllib.request.Request(target, data=data, method=method, headers=all_headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return Response(answer.status, dict(answer.headers.items()), answer.read())
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code in _RETRY_STATUSES and attempt < RETRIES:
                    time.sleep(self.sleep * (attempt + 1))
                    continue
                message, problem = _problem_message(exc.code, body)
                raise ApiError(exc.code, message, problem) from exc
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if attempt < RETRIES:
                    time.sleep(self.sleep * (attempt + 1))
                    continue
                reason = getattr(exc, "reason", exc)
                raise ApiError(0, f"cannot reach the ledger at {self.base_url}: {reason}") from exc
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def read(self, path: str, **params: Any) -> Any:
        """GET from the read models; by default the server answers once they hold every write
        acknowledged before this call (docs/guarantees.md)."""
        return self.get(path, **params)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Rows as aligned columns under upper-case headers; None shows as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"
