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
the cluster said.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, Final

import aiohttp

# 4xx statuses that describe a passing condition rather than a wrong request.
_TRANSIENT_4XX: Final = frozenset({408, 409, 425, 429})


class ApplyError(Exception):
    """Base of the two outcomes; ``status`` is the HTTP status when there was one."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TemporaryError(ApplyError):
    retryable = True

    def __init__(self, message: str, *, status: int | None = None, delay: float | None = None) -> None:
        super().__init__(message, status=status)
        self.delay = delay


class PermanentError(ApplyError):
    retryable = False


def is_transient_status(status: int) -> bool:
    return status >= 500 or status in _TRANSIENT_4XX


def from_status(status: int, body: Any, headers: Any = None, *, what: str = "") -> ApplyError:
    """The error for an HTTP error answer: ``body`` is the decoded JSON (ideally a ``Status``)."""
    message = ""
    retry_after: float | None = None
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        details = body.get("details")
        if isinstance(details, dict) and details.get("retryAfterSeconds") is not None:
            retry_after = _seconds(details.get("retryAfterSeconds"))
    if headers is not None:
        header = headers.get("Retry-After")
        if header is not None:
            retry_after = _seconds(header) if retry_after is None else retry_after
    if not message:
        message = f"HTTP {status}" + (f" from {what}" if what else "")
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
        body: Any = None
        raw = exc.body
        if raw:
            try:
                body = json.loads(raw)
            except (TypeError, ValueError):
                body = {"message": raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)}
        if status == 0:
            return TemporaryError(f"{exc.reason or 'request failed'}{where}")
        return from_status(status, body, exc.headers, what=what)
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return PermanentError(f"TLS failure{where}: {exc}")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return TemporaryError(f"timed out{where}")
    return TemporaryError(_describe(exc) + where)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
