"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the application itself.

Its operations are the router's routes (``app.router.routes()``), described by their rows in
api/operations.py; its security comes from the policy table (api/policy.py: a public route needs
no token, every other one a bearer token); every operation takes and every response carries the
``X-Request-Id`` header (api/access.py, ``operations.REQUEST_ID``); its schemas are msgspec's JSON Schemas of the request
Structs the handlers decode with and of the response Structs (api/schemas.py). OpenAPI 3.1 uses
JSON Schema 2020-12, so msgspec's schemas go in as they are, with references pointed at
``#/components/schemas``.

The document is built once per application, when it is first asked for, and served as bytes. A
route without a row in api/operations.py makes building fail (tests/test_openapi.py walks the
router), so the document cannot silently leave a route out. ``HEAD`` follows ``GET`` and is not
listed separately. The web UI's pages (``page`` rows of api/policy.py: HTML for browsers, not part
of the JSON API) are left out by that one rule, which the coverage test applies too.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from aiohttp import web

from api import access, keys, lanes, operations, policy, problems, schemas

routes = web.RouteTableDef()
# Filled on the first request (the app is frozen by then, so the cache is a dict set at install).
CACHE: Final = web.AppKey("openapi_cache", dict[str, bytes])
VERSION: Final = "0.1.0"
REF: Final = "#/components/schemas/{name}"
BEARER: Final = "bearer"


class MissingOperation(LookupError):
    """A route of the application without a row in api/operations.py."""


def _schema_of(kind: type | None, wanted: list[type]) -> dict[str, Any]:
    if kind is None:
        return {"type": "string"}
    if kind is dict:
        return {"type": "object"}
    wanted.append(kind)
    return {"$ref": f"__type__{len(wanted) - 1}"}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {access.HEADER: operations.REQUEST_ID_HEADER},
            "content": {problems.CONTENT_TYPE: {"schema": {"$ref": REF.format(name="Problem")}}}}


_DESCRIPTIONS: Final = {
    400: "malformed JSON", 401: "no valid bearer token (WWW-Authenticate: Bearer)",
    403: "the token's role or scope does not allow this", 404: "not found", 409: "conflict: expected version, "
    "event id, or the domain's rules", 413: "request body too large", 415: "unsupported Content-Type",
    422: "invalid input; field names it in msgspec's $.path style", 429: "this client's share of expensive "
    "requests or live streams is taken (Retry-After)", 503: "the event store is unavailable "
    "or too contended (Retry-After)", 504: "the read models did not reach min_position in time",
}


def _parameter(param: operations.Param) -> dict[str, Any]:
    found: dict[str, Any] = {"name": param.name, "in": param.where, "schema": param.schema,
                             "description": param.description}
    if param.required:
        found["required"] = True
    return found


def _operation(method: str, path: str, op: operations.Operation, rule: policy.Rule | None,
               settings_public: bool, lane: str, wanted: list[type]) -> dict[str, Any]:
    public = rule is not None and (rule.permission == "public" or settings_public)
    declared = {p.name: p for p in op.params}
    params = [declared.get(name) or operations.PATH_PARAMS[name] for name in operations.path_params(path)]
    params += [p for p in op.params if p.where != "path"]
    params.append(operations.REQUEST_ID)
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.replies.items()):
        body: dict[str, Any] = {"description": reply.description,
                                "headers": {access.HEADER: operations.REQUEST_ID_HEADER}}
        if reply.content:
            body["content"] = {media: {"schema": _schema_of(kind, wanted)} for media, kind in reply.content.items()}
        responses[str(status)] = body
    for status in sorted(operations.problem_statuses(op, needs_token=not public, path=path, lane=lane)):
        responses.setdefault(str(status), _problem_response(_DESCRIPTIONS.get(status, "error")))
    found: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "tags": [op.tag],
                             "parameters": [_parameter(p) for p in params], "responses": responses}
    if rule is not None and not public:
        found["description"] = f"Needs the {rule.permission!r} permission (roles: " + ", ".join(
            policy.roles_with(rule.permission)) + ")" + (" within the token's scope." if rule.scoped else ".")
        if rule.public_if:
            found["description"] += f" Public when the setting {rule.public_if} is on."
    found["security"] = [] if public else [{BEARER: []}]
    if op.body is not None:
        content = {media: {"schema": _schema_of(op.body.struct, wanted)} for media in operations.JSON}
        content.update({media: {"schema": {"type": "string"}} for media in op.body.raw})
        found["requestBody"] = {"required": op.body.required, "content": content}
    return found


def _resolve(node: Any, refs: list[dict[str, Any]]) -> Any:
    """Replace the ``__type__N`` placeholders by the schemas msgspec generated."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("__type__"):
            return refs[int(ref.removeprefix("__type__"))]
        return {k: _resolve(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, refs) for v in node]
    return node


def build(app: web.Application) -> dict[str, Any]:
    """The document for ``app``'s routes; raises MissingOperation for a route without a row."""
    settings = app[keys.SETTINGS]
    wanted: list[type] = [schemas.Problem]
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if policy.is_page(route.method, path):
            continue
        op = operations.operation(route.method, path)
        if op is None:
            raise MissingOperation(f"{route.method} {path} has no row in api/operations.py")
        rule = policy.rule_for(route.method, path)
        public_by_setting = bool(rule is not None and rule.public_if and getattr(settings, rule.public_if))
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            route.method, path, op, rule, public_by_setting, lanes.kind_of(route.handler), wanted)
    generated, components = msgspec.json.schema_components(wanted, ref_template=REF)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Deployment Ledger",
            "version": VERSION,
            "description": "An event-sourced deployment ledger for Kubernetes fleets. Errors are RFC 9457 "
                           "problem details (application/problem+json). Every operation but the probes "
                           "and the reference page needs a bearer token.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in ("log", "feed", "audit", "targets", "deployments", "tokens",
                                             "operations")],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {BEARER: {
                "type": "http", "scheme": "bearer",
                "description": "An access token (ledger token issue, POST /v1/tokens); the actor recorded "
                               "in events is the token's name."}},
        },
    }
    resolved: dict[str, Any] = _resolve(document, list(generated))
    return resolved


def document(app: web.Application) -> bytes:
    cache = app[CACHE]
    if "json" not in cache:
        cache["json"] = msgspec.json.encode(build(app))
    return cache["json"]


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=document(request.app), content_type="application/json")


def install(app: web.Application) -> None:
    app[CACHE] = {}
    app.add_routes(routes)
