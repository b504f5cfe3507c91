"""The OpenAPI document against the application it describes, generated from the router: every
route is an operation, every parameter and problem status a handler's code can produce is
documented, the document validates, and the reference page works offline. What the handlers really
answer is held to the document by the fuzz run (tests/test_fuzz.py)."""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import msgspec
import pytest
from openapi_spec_validator import validate

from api import access, openapi, operations, params, policy, reference

_SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}
# How the handlers read query parameters and headers, and how they refuse.
_QUERY = re.compile(r"""(?:query_int|query_list|flag|params\.integer|params\.optional)\(\s*request,\s*"([^"]+)"|"""
                    r"""request\.query\.(?:get|getall)\(\s*"([^"]+)\"""")
_HEADER = re.compile(r"""request\.headers\.get\(\s*"([^"]+)\"""")
_STATUS = re.compile(r"Problem\(\s*(\d{3})")
_CALL = re.compile(r"(?:\b|@)(?:(\w+)\.)?(\w+)(?:\(|\n)")
# Headers every request may carry that are not parameters of an operation.
_GENERAL_HEADERS = {"Authorization", "Accept", "User-Agent", "Content-Type"}
# Where reading the code over-approximates (a shared helper's branch this route never takes).
_NOT_REACHED = {
    ("POST", "/v1/deployments/{name}/pause", "reason"): "the query's reason is read for DELETE only",
    ("POST", "/v1/deployments/{name}/resume", "reason"): "the query's reason is read for DELETE only",
    ("GET", "/v1/targets", "404"): "submission.problem_for: only the selector's 422 is passed to it",
    ("GET", "/v1/targets", "409"): "submission.problem_for: only the selector's 422 is passed to it",
    ("PUT", "/v1/targets/{name}", "404"): "register_target refuses with 409 or 422, never 404",
    ("POST", "/v1/tokens", "404"): "issuing refuses with 409 or 422, never 404",
    ("PUT", "/v1/freezes/{name}", "404"): "setting a freeze refuses with 409 or 422, never 404",
}


def _document(app: Any) -> dict[str, Any]:
    return openapi.build(app)


def _routes(app: Any) -> list[tuple[str, str, Any]]:
    """The JSON API's routes: every route but the web UI's pages (``page`` rows of api/policy.py),
    which are HTML and left out of the document by that same rule."""
    return sorted({(r.method, r.resource.canonical, r.handler) for r in app.router.routes()
                   if r.method != "HEAD" and not policy.is_page(r.method, r.resource.canonical)},
                  key=lambda r: (r[1], r[0]))


def test_the_web_ui_pages_are_the_only_routes_left_out_and_each_is_html(app):
    document = _document(app)
    pages = {(r.method, r.resource.canonical) for r in app.router.routes()
             if r.method != "HEAD" and policy.is_page(r.method, r.resource.canonical)}
    assert ("GET", "/fleet") in pages and ("POST", "/deployments/{name}/rollback") in pages
    assert not any(path in document["paths"] for _, path in pages)
    for method, path in pages:
        route = next(r for r in app.router.routes() if (r.method, r.resource.canonical) == (method, path))
        assert route.handler.__module__.startswith("api.ui."), f"{method} {path} is a page outside api/ui"
    for method, path in {(m, p) for m, p, _ in _routes(app)}:
        assert not path.startswith(("/fleet", "/deployments/", "/timeline", "/audit", "/signin", "/ui/")), (
            f"{method} {path} looks like a page of the web UI but is not a page row of api/policy.py")


def test_every_route_of_the_application_is_an_operation_and_every_operation_a_route(app):
    document = _document(app)
    listed = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    routes = {(m, p) for m, p, _ in _routes(app)}
    assert routes - listed == set(), "routes missing from /openapi.json (add rows to api/operations.py)"
    assert listed - routes == set()
    assert set(operations.OPERATIONS) == routes, "rows of api/operations.py without a route"
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_a_route_without_an_operation_row_fails_the_document(app):
    async def handler(_request: Any) -> Any:
        raise AssertionError

    app.router.add_get("/v1/undocumented", handler)
    with pytest.raises(openapi.MissingOperation, match="/v1/undocumented"):
        openapi.build(app)


def test_the_document_is_valid_openapi_3_1(app):
    document = _document(app)
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_error_response_is_problem_json_and_security_follows_the_policy(app):
    document = _document(app)
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    for path, item in document["paths"].items():
        for method, op in item.items():
            rule = policy.rule_for(method.upper(), path)
            assert rule is not None
            assert op["security"] == ([] if rule.permission == "public" else [{"bearer": []}]), (method, path)
            if op["security"]:
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            for status, response in op["responses"].items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):
                    continue
                assert response["content"] == {"application/problem+json": {"schema": _SCHEMA_REF}}, (
                    method, path, status)
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "field"} <= set(problem["properties"])


def test_every_operation_takes_and_every_response_declares_the_request_id(app):
    document = _document(app)
    for path, item in document["paths"].items():
        for method, op in item.items():
            declared = [p for p in op["parameters"] if p["name"] == access.HEADER]
            assert [(p["in"], p.get("required", False)) for p in declared] == [("header", False)], (method, path)
            for status, response in op["responses"].items():
                header = response.get("headers", {}).get(access.HEADER)
                assert header is not None and header["required"], (method, path, status)
                assert re.fullmatch(header["schema"]["pattern"].strip("^$"), "3f2a-7_b.c:d/e+f=g@h")


async def test_a_response_carries_the_request_id_the_document_declares(client, app):
    pattern = re.compile(operations.REQUEST_ID_HEADER["schema"]["pattern"])
    given = await client.get("/v1/events", headers={access.HEADER: "trace-42"})
    assert given.headers[access.HEADER] == "trace-42"
    for unusable in ("", "x" * (access.MAX_LENGTH + 1), "has space"):
        made = await client.get("/v1/verify?from=0", headers={access.HEADER: unusable})
        assert made.status == 422 and pattern.fullmatch(made.headers[access.HEADER]), unusable


def _integer_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The integer alternative of a parameter's schema (a position, or ``head``), if it has one."""
    for alternative in [schema, *schema.get("anyOf", [])]:
        if alternative.get("type") == "integer":
            return alternative
    return None


def test_the_documented_integer_bounds_are_the_enforced_ones(app):
    """api/params.py holds the bounds the handlers enforce; the document states the same, for every
    integer a route reads (If-Match has a syntax of its own: an entity tag) and none besides."""
    document = _document(app)
    wrong: list[str] = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            enforced = {p.name: p.bound for p in params.ROUTES[method.upper(), path] if p.name != "If-Match"}
            documented = {p["name"]: _integer_schema(p["schema"]) for p in op["parameters"]}
            for name, bound in enforced.items():
                schema = documented.get(name)
                if schema is None or (schema.get("minimum"), schema.get("maximum")) != (bound.low, bound.high):
                    wrong.append(f"{method.upper()} {path} {name}: enforced {bound.low}..{bound.high}, "
                                 f"documented {schema}")
            for name, schema in documented.items():
                if schema is not None and name not in enforced:
                    wrong.append(f"{method.upper()} {path} {name}: documented as an integer, not declared in "
                                 f"api/params.py")
    assert wrong == [], "\n".join(wrong)


def _api_functions() -> dict[str, Callable[..., Any]]:
    """Every function of the api package by ``module.name`` and by bare name within its module."""
    import importlib
    import pkgutil

    import api

    found: dict[str, Callable[..., Any]] = {}
    for info in pkgutil.iter_modules(api.__path__):
        module = importlib.import_module(f"api.{info.name}")
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                found[f"{info.name}.{name}"] = value
    return found


def _reachable_source(handler: Callable[..., Any], functions: dict[str, Callable[..., Any]]) -> str:
    """The handler's source and that of every api function it calls, transitively."""
    module = handler.__module__.removeprefix("api.")
    seen: set[str] = set()
    texts: list[str] = []
    pending = [(module, handler)]
    while pending:
        where, function = pending.pop()
        key = f"{function.__module__}.{function.__name__}"
        if key in seen:
            continue
        seen.add(key)
        text = textwrap.dedent(inspect.getsource(function))
        texts.append(text)
        for qualifier, name in _CALL.findall(text):
            candidate = functions.get(f"{qualifier or where}.{name}")
            if candidate is not None:
                pending.append((candidate.__module__.removeprefix("api."), candidate))
    return "\n".join(texts)


def test_every_parameter_a_handler_reads_and_every_status_it_raises_is_documented(app):
    """From the handlers' code: a new ``request.query.get("x")`` or ``Problem(418, ...)`` in a
    handler, or in anything it calls in api/, fails here until the operation documents it."""
    document = _document(app)
    functions = _api_functions()
    problems: list[str] = []
    for method, path, handler in _routes(app):
        op = document["paths"][path][method.lower()]
        source = _reachable_source(handler, functions)
        documented = {(p["in"], p["name"].lower()) for p in op["parameters"]}
        names = {name for _, name in documented}
        for groups in _QUERY.findall(source):
            name = next(g for g in groups if g)
            # params.integer reads a declared query, path or header integer (api/params.py).
            if name.lower() not in names and (method, path, name) not in _NOT_REACHED:
                problems.append(f"{method} {path}: query parameter {name!r} is not documented")
        for name in _HEADER.findall(source):
            if name not in _GENERAL_HEADERS and ("header", name.lower()) not in documented:
                problems.append(f"{method} {path}: header {name!r} is not documented")
        statuses = {int(s) for s in _STATUS.findall(source)}
        if "invalid(" in source:
            statuses.add(422)
        for status in sorted(statuses):
            if str(status) not in op["responses"] and (method, path, str(status)) not in _NOT_REACHED:
                problems.append(f"{method} {path}: status {status} is not documented")
    assert problems == [], "\n".join(problems)


async def test_openapi_json_is_served_to_a_token_holder_and_refused_without_one(client, app):
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert msgspec.json.decode(await response.read()) == msgspec.json.decode(
        msgspec.json.encode(_document(app)))
    refused = await client.get("/openapi.json", headers={"Authorization": ""})
    assert refused.status == 401


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None and tag in ("script", "link"):
                self.links.append(value)


async def test_the_reference_page_loads_its_assets_from_this_service_under_a_strict_policy(client):
    no_token = {"Authorization": ""}
    page = await client.get("/api", headers=no_token)
    assert page.status == 200 and page.content_type == "text/html"
    assert page.headers["Content-Security-Policy"] == reference.CSP
    assert "script-src 'self'" in reference.CSP and "unsafe-inline" not in reference.CSP
    parser = _Links()
    parser.feed(await page.text())
    assert sorted(parser.links) == ["/api/assets/reference.css", "/api/assets/reference.js"]
    for link in parser.links:
        asset = await client.get(link, headers=no_token)
        assert asset.status == 200
        assert asset.content_type == ("text/css" if link.endswith(".css") else "text/javascript")
        text = await asset.text()
        assert "http://" not in text and "https://" not in text, f"{link} reaches outside this service"
    missing = await client.get("/api/assets/..%2Fapp.py", headers=no_token)
    assert missing.status == 404 and missing.content_type == "application/problem+json"


async def test_the_reference_script_fetches_the_document_with_the_token(client):
    script = await (await client.get("/api/assets/reference.js")).text()
    assert 'fetch("/openapi.json"' in script and "Authorization" in script

