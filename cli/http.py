"""The CLI's side of HTTP: requests to the ledger API with urllib, problems as clean errors, tables.

Decisions:

- urllib, not aiohttp: a command makes a handful of sequential requests, and blocking code keeps
  the commands plain functions.
- Every write carries an ``Idempotency-Key`` made once per invocation, so a write whose answer was
  lost (connection reset, 502/503/504, 429) is safely sent again and never recorded twice.
- Waiting is bounded: a 429/502/503/504 is retried after the server's ``Retry-After`` (seconds or
  an HTTP date; without it, a doubling backoff), as long as the total wait stays within
  ``budget`` seconds. A ``Retry-After`` longer than what is left is not waited for: the command
  fails at once, saying how long the service asked for. A service that does not answer at all is
  tried ``CONNECT_RETRIES`` more times, briefly, so "not running" is reported within seconds.
- A problem+json answer becomes :class:`ApiError` carrying the server's title, detail and field,
  and the exit code its status means (cli/exits.py); the message is always one line.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cli import exits

DEFAULT_URL: Final = "http://127.0.0.1:8080"
RETRY_BUDGET: Final = 30.0
CONNECT_RETRIES: Final = 3
MAX_RETRIES: Final = 10
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})


class ApiError(exits.Failure):
    """The API refused a request (``status`` > 0) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str, problem: Mapping[str, Any] | None = None) -> None:
        super().__init__(exits.for_status(status), one_line(message))
        self.status = status
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


def one_line(text: str) -> str:
    return " ".join(text.split())


def problem_message(status: int, body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        problem = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body.decode('utf-8', 'replace').strip()[:500]}", {}
    if not isinstance(problem, dict):
        return f"HTTP {status}", {}
    title = problem.get("title") or f"HTTP {status}"
    detail = problem.get("detail") or ""
    return f"{status} {title}: {detail}" if detail else f"{status} {title}", problem


def retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - now).total_seconds())


class Patience:
    """How long to keep retrying a busy service: what its ``Retry-After`` asks (else a doubling
    ``backoff``), as long as the total stays within ``budget`` seconds and ``MAX_RETRIES``."""

    def __init__(self, budget: float, backoff: float) -> None:
        self.budget = budget
        self.backoff = backoff
        self.waited = 0.0
        self.attempts = 0

    def delay(self, header: str | None) -> float | None:
        """Seconds to wait before the next attempt, or None: give up now."""
        asked = retry_after(header)
        delay = asked if asked is not None else self.backoff * 2 ** self.attempts
        if self.waited + delay > self.budget or self.attempts >= MAX_RETRIES:
            return None
        self.waited += delay
        self.attempts += 1
        return delay

    def gave_up(self, header: str | None) -> str:
        """Why there is no next attempt, to append to the service's message."""
        asked = retry_after(header)
        waited = f"gave up after {self.attempts} retries in {self.waited:g} s"
        if asked is not None and asked > self.budget - self.waited:
            return f" (it asks to retry after {asked:g} s; {waited}, at most {self.budget:g} s)"
        return f" ({waited})"


def check_url(base_url: str) -> str:
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise exits.Failure(exits.Code.USAGE, f"--url {base_url!r} is not an http:// or https:// URL")
    return base_url.rstrip("/")


@dataclass
class Client:
    base_url: str = DEFAULT_URL
    timeout: float = 30.0
    actor: str | None = None
    backoff: float = 0.5
    budget: float = RETRY_BUDGET
    pause: Callable[[float], None] = time.sleep
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
        if method not in ("GET", "HEAD"):
            all_headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        target = self.url(path, params)
        patience = Patience(self.budget, self.backoff)
        refused = 0
        while True:
            request = urllib.request.Request(target, data=data, method=method, headers=all_headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return Response(answer.status, dict(answer.headers.items()), answer.read())
            except urllib.error.HTTPError as exc:
                body = exc.read()
                message, problem = problem_message(exc.code, body)
                if exc.code not in RETRY_STATUSES:
                    raise ApiError(exc.code, message, problem) from exc
                header = exc.headers.get("Retry-After")
                delay = patience.delay(header)
                if delay is None:
                    raise ApiError(exc.code, message + patience.gave_up(header), problem) from exc
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if refused >= CONNECT_RETRIES:
                    reason = getattr(exc, "reason", exc)
                    raise ApiError(0, f"cannot reach the ledger at {self.base_url}: {reason}") from exc
                refused += 1
                delay = self.backoff * refused
            self.pause(delay)

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
