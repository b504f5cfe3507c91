"""What every write carries besides its body: the expected version and the metadata it records.

Shared by the commands and the generic append (``api.submission`` is their one way in).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from api import access, auth, params, problems
from ledger import events, records

ExpectedVersion = (
    Annotated[int, msgspec.Meta(ge=0, le=params.INT32_MAX)] | Literal["any", "no_stream", "exists"]
)


def expected_version(request: web.Request, body_value: ExpectedVersion | None,
                     default: records.ExpectedVersion = "any") -> records.ExpectedVersion:
    """From the body's ``expected_version`` or an ``If-Match: "N"`` header (both: they must agree)."""
    header = request.headers.get("If-Match")
    from_header: records.ExpectedVersion | None = None
    if header is not None:
        raw = header.strip().removeprefix("W/").strip('"')
        if raw == "*":
            from_header = "exists"
        else:
            from_header = params.value(request, "If-Match", raw)
    if from_header is not None and body_value is not None and from_header != body_value:
        raise problems.invalid("If-Match", f"disagrees with expected_version {body_value!r}")
    chosen = from_header if from_header is not None else body_value
    if chosen == 0:
        return "no_stream"
    return default if chosen is None else chosen


def metadata_for(request: web.Request, submitted: dict[str, Any], index: int,
                 cache: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Submitted metadata with actor (the token's name, api/auth.py), on_behalf_of (``X-Actor``),
    request id (api/access.py) and client filled in from the request. A submitted actor other than
    the token's is refused: the audit trail's actor is never a client's claim. So is a request id
    other than the request's, so that an access-log line finds every event its request wrote."""
    if not submitted:
        # The usual case, without a Struct round trip: what the request says, None left out.
        if cache is not None and "default" in cache:
            return cache["default"]
        filled_in = {
            "actor": auth.actor(request),
            "on_behalf_of": auth.on_behalf_of(request),
            "request_id": access.request_id(request),
            "client": request.headers.get("User-Agent"),
        }
        plain = {k: v for k, v in filled_in.items() if v is not None}
        if cache is not None:
            cache["default"] = plain
        return plain
    try:
        meta = events.metadata_from(submitted)
    except msgspec.ValidationError as exc:
        raise problems.from_validation(exc, f"$.events[{index}].metadata") from exc
    actor = auth.actor(request)
    if meta.actor is not None and meta.actor != actor:
        raise problems.invalid(f"$.events[{index}].metadata.actor",
                               f"the actor is the token's name ({actor!r}); say who you act for with "
                               "on_behalf_of or X-Actor")
    request_id = access.request_id(request)
    if meta.request_id is not None and meta.request_id != request_id:
        raise problems.invalid(f"$.events[{index}].metadata.request_id",
                               f"the request id is the request's ({request_id!r}); send yours as the "
                               "X-Request-Id header (correlation_id links events to other work)")
    filled = msgspec.structs.replace(
        meta,
        actor=actor,
        on_behalf_of=meta.on_behalf_of or auth.on_behalf_of(request),
        request_id=request_id,
        client=meta.client or request.headers.get("User-Agent"),
    )
    result: dict[str, Any] = msgspec.to_builtins(filled)
    return result
