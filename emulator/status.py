"""Kubernetes ``Status`` error bodies and the exception that carries them.

Every failure the emulator reports, whether it comes from validation, a
missing object or an injected fault, goes through :class:`ApiError` so that
clients always see what a real API server sends: a ``kind: Status`` body whose
``code`` matches the HTTP status, with ``reason``, ``message`` and ``details``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.catalog import ResourceType

REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    """The StatusReason a real API server uses for an HTTP code ("" if none)."""
    if code in REASONS:
        return REASONS[code]
    return "InternalError" if code >= 500 else ""


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": dict(details or {}),
        "code": code,
    }
    return body


def success_status(details: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": dict(details),
    }


class ApiError(Exception):
    """An API failure, rendered to the client as a Status body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def resource_details(rt: ResourceType, name: str) -> dict[str, Any]:
    """``details`` as the real API fills them for NotFound / AlreadyExists (kind = plural!)."""
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified_plural} "{name}" not found', resource_details(rt, name))


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
    )


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{rt.qualified_plural} "{name}" already exists', resource_details(rt, name)
    )


def conflict(
    rt: ResourceType, name: str, message: str, causes: list[dict[str, str]] | None = None
) -> ApiError:
    details = resource_details(rt, name)
    if causes:
        details["causes"] = causes
    return ApiError(409, "Conflict", message, details)


def stale_update(rt: ResourceType, name: str) -> ApiError:
    return conflict(
        rt,
        name,
        f'Operation cannot be fulfilled on {rt.qualified_plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def invalid(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> ApiError:
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {summary}', details)


def forbidden(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(
        403, "Forbidden", f'{rt.qualified_plural} "{name}" is forbidden: {why}', resource_details(rt, name)
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got "{content_type}")',
    )
