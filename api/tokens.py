"""Access tokens over HTTP (admin only): ``POST /v1/tokens`` issues one and answers its secret, once;
``GET /v1/tokens[/{name}]`` lists and shows them (never a secret nor its hash); ``DELETE
/v1/tokens/{name}`` revokes.

Issuing and revoking are events in ``token-<name>`` (projections/tokens.py decides them on the
stream as stored, with its version as the expected version). The process that wrote one folds it
into its table at once, so its own next request sees it; other processes follow the log (api/auth.py).
A retried POST cannot be answered with the first secret (it is stored nowhere): it gets 409, and
the caller revokes and issues again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Final

import msgspec
from aiohttp import web

from api import access, auth, bodies, envelope, keys, problems, reads, submission
from ledger import errors, events, ids, records, secrets
from ledger import streams as stream_names
from projections import commands, selectors, tokens

routes = web.RouteTableDef()
_ATTEMPTS: Final = 5
_NO_STORE: Final = {"Cache-Control": "no-store"}


class IssueBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: events.Role
    targets: str = ""
    deployments: list[str] = []
    expires: str | None = None
    expires_at: dt.datetime | None = None


class RevokeBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


def _name(value: str) -> str:
    try:
        return stream_names.validate_id(value, "token name")
    except stream_names.StreamNameError as exc:
        raise problems.invalid("name", str(exc)) from exc


def _expiry(body: IssueBody) -> dt.datetime | None:
    now = dt.datetime.now(dt.UTC)
    if body.expires is not None and body.expires_at is not None:
        raise problems.invalid("expires", "send expires (a duration) or expires_at (a time), not both")
    if body.expires is not None:
        try:
            return (now + tokens.parse_duration(body.expires)).replace(microsecond=0)
        except commands.Invalid as exc:
            raise submission.problem_for(exc) from exc
    if body.expires_at is not None:
        if body.expires_at.tzinfo is None:
            raise problems.invalid("expires_at", "needs a time zone (e.g. 2027-01-31T00:00:00Z)")
        if body.expires_at <= now:
            raise problems.invalid("expires_at", "is in the past")
        if body.expires_at - now > tokens.MAX_LIFETIME:
            raise problems.invalid("expires_at", f"is more than {tokens.MAX_LIFETIME.days} days away")
        return body.expires_at
    return None


async def _write(request: web.Request, name: str,
                 decide: Callable[[tokens.Table], events.TokenIssued | events.TokenRevoked]) -> tokens.Token:
    """Decide on the token stream as stored, append with its version, fold it into this process."""
    store = request.app[keys.STORE]
    stream = f"token-{name}"
    for _ in range(_ATTEMPTS):
        try:
            stored = await store.read_stream(stream, 1, 10_000)
        except errors.StreamNotFound:
            stored = []
        local = tokens.Table()
        for rec in stored:
            tokens.apply_recorded(local, rec)
        try:
            event = decide(local)
        except (commands.DomainError, selectors.InvalidInput) as exc:
            raise submission.problem_for(exc) from exc
        expected: records.ExpectedVersion = stored[-1].version if stored else "no_stream"
        try:
            result = await store.append(stream, expected, [records.NewEvent(
                ids.new(), events.type_name(event), events.to_data(event),
                envelope.metadata_for(request, {}, 0))])
        except errors.WrongExpectedVersion:
            continue
        access.wrote(request, result.positions)
        now = dt.datetime.now(dt.UTC)
        for table in (request.app[keys.TOKENS], local):
            tokens.apply(table, event, result.positions[0], result.last_version, now, auth.actor(request))
        return local.by_name[name]
    raise problems.Problem(503, "Too much contention", f"{stream} changed under this request; retry",
                           headers={"Retry-After": "1"})


@routes.post("/v1/tokens")
async def issue(request: web.Request) -> web.Response:
    body = await bodies.read_json(request, IssueBody)
    name = _name(body.name)
    expires_at = _expiry(body)
    secret = secrets.new()
    digest = secrets.digest(secret)
    scope = events.Scope(targets=body.targets, deployments=body.deployments)
    token = await _write(request, name, lambda table: tokens.issue(table, name, body.role, scope, expires_at,
                                                                    digest, time.time()))
    answer = {**token.public(time.time()), "token": secret}
    return bodies.json_response(answer, status=201,
                                headers={**_NO_STORE, "Location": f"/v1/tokens/{name}"})


@routes.get("/v1/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    now = time.time()
    table = request.app[keys.TOKENS]
    found = [t.public(now) for _, t in sorted(table.by_name.items())]
    return bodies.json_response({"tokens": found}, headers=_NO_STORE)


@routes.get("/v1/tokens/{name}")
async def get_token(request: web.Request) -> web.Response:
    name = reads.name_param(request, "token name")
    found = request.app[keys.TOKENS].by_name.get(name)
    if found is None:
        raise problems.Problem(404, "Not found", f"token {name} does not exist")
    return bodies.json_response(found.public(time.time()), headers=_NO_STORE)


@routes.delete("/v1/tokens/{name}")
async def revoke(request: web.Request) -> web.Response:
    name = reads.name_param(request, "token name")
    body = await submission.optional_json(request, RevokeBody)
    token = await _write(request, name, lambda table: tokens.revoke(table, name, body.reason))
    return bodies.json_response(token.public(time.time()))
