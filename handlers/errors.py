"""What can go wrong when talking to a cluster, said in terms of what happens next.

Everything the Kubernetes client stack raises (kubernetes-asyncio's ApiException, aiohttp's
connection errors, timeouts, and the ``Status`` bodies the DynamicClient hands back instead of
raising) is translated here, at the boundary, into one of two errors, as kopf does:

- :class:`TemporaryError` — try again later (5xx, 429, 408, 409, timeouts, refused or dropped
  connections, a credentials file that cannot be read yet). ``delay`` carries the server's
  Retry-After when it sent one; the caller's backoff decides otherwise.
- :class:`PermanentError` — trying again without a change cannot help (422 invalid object, 403,
  401, 404 unknown kind or namespace, 400, TLS verification failures, a malformed credentials
  reference). It is retried only when the revision or the target changes.

The message is the API server's own (its ``Status.message``), so the ApplyFailed event says what
the cluster said. That event is public and permanent, and the server answering may be anything
(a proxy, a login page, a hostile host), so what enters it is bounded and sanitised here:

- a Kubernetes ``Status.message`` is kept, up to ``STATUS_MESSAGE_MAX`` characters;
- anything else (a JSON error that is not a Status, plain text, a library's exception text) at most
  ``EXCERPT_MAX`` characters;
- a body that is neither JSON nor plain text (an HTML page, XML, binary) is described by its
  content type and size, never quoted;
- control and invisible formatting characters become spaces and runs of whitespace one space, so a
  message is one line that cannot forge log lines or hide text.

The HTTP status is kept apart (``status``) whatever the body said.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

# 4xx statuses that describe a passing condition rather than a wrong request.
_TRANSIENT_4XX: Final = frozenset({408, 409, 425, 429})
STATUS_MESSAGE_MAX: Final = 1024
EXCERPT_MAX: Final = 300
# C0 and C1 controls, zero-width and bidirectional formatting characters, line and paragraph separators.
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
_PLAIN_TYPES: Final = ("", "text/plain", "application/json")


def clean(text: str, limit: int = EXCERPT_MAX) -> str:
    """``text`` on one line, without control or invisible characters, at most ``limit`` characters."""
    text = " ".join(_UNPRINTABLE.sub(" ", text[: limit * 4]).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class NotJson:
    """An answer body that is not JSON: its content type, size and the text when it is plain."""

    content_type: str
    size: int
    text: str | None

    @classmethod
    def of(cls, raw: bytes | str, content_type: str | None) -> NotJson:
        media = (content_type or "").split(";")[0].strip().lower()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        plain = media in _PLAIN_TYPES and not text.lstrip().startswith("<")
        return cls(media or "an unlabelled body", len(raw), clean(text) if plain else None)

    def describe(self) -> str:
        if self.text:
            return self.text
        return f"the answer was {self.content_type} ({self.size} bytes), not a Kubernetes Status"


def decode_body(raw: bytes | str | None, content_type: str | None) -> Any:
    """An answer body: JSON decoded, anything else as :class:`NotJson`, None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return NotJson.of(raw, content_type)


class ApplyError(Exception):
    """Base of the two outcomes; ``status`` is the HTTP status when there was one, ``reason`` a word
    for a refusal the ledger decided itself (ApplyFailed.reason; "" for the cluster's errors)."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        message = clean(message, STATUS_MESSAGE_MAX)
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class TemporaryError(ApplyError):
    retryable = True

    def __init__(self, message: str, *, status: int | None = None, delay: float | None = None,
                 reason: str = "") -> None:
        super().__init__(message, status=status, reason=reason)
        self.delay = delay


class PermanentError(ApplyError):
    retryable = False


def is_transient_status(status: int) -> bool:
    return status >= 500 or status in _TRANSIENT_4XX


def from_status(status: int, body: Any, headers: Any = None, *, what: str = "") -> ApplyError:
    """The error for an HTTP error answer: ``body`` as :func:`decode_body` gives it (ideally a ``Status``)."""
    message = ""
    retry_after: float | None = None
    if isinstance(body, NotJson):
        message = body.describe()
    elif isinstance(body, dict):
        said = str(body.get("message") or "")
        message = said if body.get("kind") == "Status" else clean(said)
        details = body.get("details")
        if isinstance(details, dict) and details.get("retryAfterSeconds") is not None:
            retry_after = _seconds(details.get("retryAfterSeconds"))
    if headers is not None:
        header = headers.get("Retry-After")
        if header is not None:
            retry_after = _seconds(header) if retry_after is None else retry_after
    prefix = f"HTTP {status}" + (f" from {what}" if what else "")
    if not message:
        message = prefix
    elif isinstance(body, NotJson):
        message = f"{prefix}: {message}"
    if is_transient_status(status):
        return TemporaryError(message, status=status, delay=retry_after)
    return PermanentError(message, status=status)


def from_exception(exc: BaseException, *, what: str = "") -> ApplyError:
    """Translate a client-side failure (no HTTP answer, or a raised ApiException)."""
    from kubernetes_asyncio.client.rest import ApiException

    where = f" ({what})" if what else ""
    if isinstance(exc, ApplyError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        headers: Any = exc.headers or {}
        body = decode_body(exc.body, headers.get("Content-Type"))
        if status == 0:
            return TemporaryError(f"{clean(str(exc.reason or 'request failed'))}{where}")
        return from_status(status, body, exc.headers, what=what)
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return PermanentError(f"TLS failure{where}: {clean(str(exc))}")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return TemporaryError(f"timed out{where}")
    return TemporaryError(_describe(exc) + where)


def _describe(exc: BaseException) -> str:
    text = clean(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
