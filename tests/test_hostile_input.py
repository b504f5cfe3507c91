"""No input yields a 500: every route, driven with what a careless or hostile client sends.

The routes come from the application's router and their integer parameters from the table the
handlers read them through (api/params.py), so a new route or parameter is covered without
touching this file. Each hostile request must answer 4xx as problem+json naming the field, and
write nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import keys, params
from ledger import jsontext
from tests import credfiles

PROBLEM = "application/problem+json"
DEEP = 10_000
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"},
             "data": {"k": "v"}}
# What fills each path parameter: one name serves as target, deployment and stream id.
PATH_VALUES = {"stream": "deployment-web", "name": "web", "number": "1"}
# A body each write route accepts, so a hostile value elsewhere is what it refuses (every write
# route must have one: see test_every_write_route_has_a_sample_body).
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/streams/{stream}/events"): {
        "events": [{"type": "DeploymentPaused", "data": {"deployment": "web"}, "metadata": {"reason": "r"}}]},
    ("PUT", "/v1/targets/{name}"): {"credentials": "web", "labels": {"region": "eu"}},
    ("POST", "/v1/deployments/{name}/revisions"): {"manifests": [CONFIGMAP], "selector": "region=eu",
                                                   "message": "m"},
    ("POST", "/v1/deployments/{name}/rollback"): {"to_revision": 1, "message": "m"},
    ("POST", "/v1/deployments/{name}/pause"): {"reason": "r"},
    ("POST", "/v1/deployments/{name}/resume"): {"reason": "r"},
    ("DELETE", "/v1/deployments/{name}"): {"reason": "r"},
    ("DELETE", "/v1/targets/{name}"): {"expected_version": "any"},
    ("POST", "/v1/tokens"): {"name": "hostile", "role": "deployer", "targets": "region=eu", "expires": "1h"},
    ("DELETE", "/v1/tokens/{name}"): {"reason": "r"},
    ("PUT", "/v1/freezes/{name}"): {"selector": "hostile=none", "reason": "r", "schedule": {
        "cron": "0 22 * * *", "duration_seconds": 3600, "time_zone": "Europe/Berlin"}},
    ("DELETE", "/v1/freezes/{name}"): {"reason": "r"},
}


def routes(app) -> list[tuple[str, str]]:
    found = {(r.method, r.resource.canonical) for r in app.router.routes()
             if r.method != "HEAD" and r.resource is not None}
    return sorted(found)


def writes(app) -> list[tuple[str, str]]:
    return [key for key in routes(app) if key[0] != "GET"]


def url(path: str, **path_values: str) -> str:
    return path.format(**{**PATH_VALUES, **path_values})


def body_of(key: tuple[str, str]) -> dict[str, Any]:
    return copy.deepcopy(VALID_BODIES[key])


def leaves(value: Any, path: str = "$") -> Iterator[tuple[str, Any, Any]]:
    """(path, container, member) of every string in ``value``, in document order."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for member, child in items:
        here = jsontext.field_path(path, member)
        if isinstance(child, str):
            yield here, value, member
        elif isinstance(child, dict | list):
            yield from leaves(child, here)


def with_each_string(key: tuple[str, str], change: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, body) for each string of the route's valid body, that string replaced by ``change(it)``."""
    for index in range(len(list(leaves(body_of(key))))):
        body = body_of(key)
        path, container, member = list(leaves(body))[index]
        container[member] = change(container[member])
        yield path, body


def hostile_integers(bound: params.Bound) -> list[str]:
    return [str(bound.high + 1), str(2**64), "9" * 5000, str(bound.low - 1), "1_0", "0x1f", "\u0661"]


def _generic_body(manifest: str) -> str:
    return ('{"events":[{"type":"RevisionSubmitted","data":{"deployment":"web","revision":2,"selector":"",'
            '"manifests":[' + manifest + "]}}]}")


async def count(db) -> int:
    return await db.fetchval("SELECT count(*) FROM events")


@pytest.fixture
async def seeded(client, db):
    """A target and a deployment named ``web``, so routes reach past their 404s."""
    credfiles.add_anonymous(client.app[keys.SETTINGS], "web")
    put = await client.put("/v1/targets/web", json={"credentials": "web", "labels": {"region": "eu"}})
    assert put.status == 201, await put.text()
    rev = await client.post("/v1/deployments/web/revisions", json={"manifests": [CONFIGMAP], "selector": "region=eu"})
    assert rev.status == 201, await rev.text()
    return client


async def _refused(resp, field: str | None, *, prefix: bool = False) -> str | None:
    """Why ``resp`` is not a 4xx problem naming ``field`` (None when it is)."""
    text = await resp.text()
    if not 400 <= resp.status < 500 or resp.content_type != PROBLEM:
        return f"{resp.status} {resp.content_type}: {text[:300]}"
    named = json.loads(text).get("field")
    if prefix and named is not None and named.endswith("[...]"):
        # msgspec names a value of a string map "[...]", without its key.
        field, named = named.removesuffix("[...]"), field
    if field is not None and (named is None or not (named.startswith(field) if prefix else named == field)):
        return f"{resp.status} names {named!r}, not {field!r}: {text[:300]}"
    return None


def test_every_route_declares_its_integer_parameters(app):
    assert set(routes(app)) == set(params.ROUTES), "api/params.py ROUTES must list every route, and only those"


def test_every_write_route_has_a_sample_body(app):
    assert set(writes(app)) == set(VALID_BODIES)


def test_every_integer_parameter_is_documented():
    text = (Path(__file__).resolve().parent.parent / "docs" / "limits.md").read_text()
    missing = {p.name for declared in params.ROUTES.values() for p in declared if f"`{p.name}`" not in text}
    assert not missing, f"docs/limits.md does not list {sorted(missing)}"


async def test_integers_beyond_their_column_are_422_naming_the_parameter(seeded, app, db):
    before = await count(db)
    failures: list[str] = []
    for key in routes(app):
        method, path = key
        for param in params.ROUTES[key]:
            for value in hostile_integers(param.bound):
                query: dict[str, str] = {}
                headers: dict[str, str] = {}
                target = url(path)
                if param.where == "query":
                    query[param.name] = value
                elif param.where == "path":
                    target = url(path, **{param.name: value})
                elif param.name == "If-Match":
                    headers["If-Match"] = f'"{value}"'
                else:
                    headers[param.name] = value
                body = None if method == "GET" else body_of(key)
                resp = await seeded.request(method, target, params=query, headers=headers, json=body)
                why = await _refused(resp, param.name)
                if why:
                    failures.append(f"{method} {path} {param.where} {param.name}={value[:30]}: {why}")
    assert not failures, "\n".join(failures)
    assert await count(db) == before


async def test_nul_in_any_string_of_a_body_is_422_naming_it(seeded, app, db):
    before = await count(db)
    failures: list[str] = []
    for key in writes(app):
        for field, body in with_each_string(key, lambda text: text + "\u0000"):
            resp = await seeded.request(key[0], url(key[1]), json=body)
            why = await _refused(resp, field)
            if why:
                failures.append(f"{key[0]} {key[1]} {field}: {why}")
    assert not failures, "\n".join(failures)
    assert await count(db) == before


async def test_json_nested_ten_thousand_deep_in_any_field_is_4xx_naming_it(seeded, app, db):
    before = await count(db)
    failures: list[str] = []
    deep = "[" * DEEP + "]" * DEEP
    for key in writes(app):
        for field, body in with_each_string(key, lambda _text: "@DEEP@"):
            raw = json.dumps(body).replace('"@DEEP@"', deep)
            resp = await seeded.request(key[0], url(key[1]), data=raw, headers={"Content-Type": "application/json"})
            why = await _refused(resp, field, prefix=True)
            if why:
                failures.append(f"{key[0]} {key[1]} {field}: {why}")
    assert not failures, "\n".join(failures)
    assert await count(db) == before


@pytest.mark.parametrize(("where", "field"), [
    ("data", "$.events[0].data.manifests[0].spec"),
    ("metadata", "$.events[0].metadata.reason"),
])
async def test_deep_json_in_generic_data_and_metadata_names_the_path(seeded, db, where, field):
    before = await count(db)
    deep = "[" * DEEP + "]" * DEEP
    spec = deep if where == "data" else "{}"
    manifest = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"},"spec":' + spec + "}"
    metadata = '{"reason":' + (deep if where == "metadata" else '"r"') + "}"
    raw = _generic_body(manifest).removesuffix("}]}") + ',"metadata":' + metadata + "}]}"
    resp = await seeded.post("/v1/streams/deployment-web/events", data=raw, headers={"Content-Type": "application/json"})
    assert await _refused(resp, field, prefix=True) is None
    assert "nested deeper than 64 levels" in (await resp.json())["detail"] or where == "metadata"
    assert await count(db) == before


async def test_a_manifest_nested_deeper_than_the_limit_is_refused_naming_the_path(seeded, db):
    before = await count(db)
    spec: Any = "leaf"
    for _ in range(jsontext.MAX_DEPTH):
        spec = {"a": spec}
    manifest = {**CONFIGMAP, "spec": spec}
    resp = await seeded.post("/v1/deployments/web/revisions", json={"manifests": [manifest]})
    assert await _refused(resp, "manifests[0].spec" + ".a" * (jsontext.MAX_DEPTH - 1)) is None
    assert "nested deeper than 64 levels" in (await resp.json())["detail"]
    fits = {**CONFIGMAP, "spec": spec["a"]}
    assert (await seeded.post("/v1/deployments/web/revisions", json={"manifests": [fits]})).status == 201
    assert await count(db) == before + 1


# Routes that carry manifests, and how a manifest's JSON text sits in their body.
def _revision_body(manifest: str) -> str:
    return '{"manifests":[' + manifest + "]}"


MANIFEST_ROUTES = [
    ("/v1/deployments/web/revisions", _revision_body, "$.manifests[0]"),
    ("/v1/streams/deployment-web/events", _generic_body, "$.events[0].data.manifests[0]"),
]


@pytest.mark.parametrize(("path", "wrap", "base"), MANIFEST_ROUTES)
async def test_a_key_repeated_in_a_manifest_object_is_refused_naming_it(seeded, db, path, wrap, base):
    before = await count(db)
    manifest = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","namespace":"default"},'
                '"data":{"k":"1","\\u006b":"2"}}')
    resp = await seeded.post(path, data=wrap(manifest), headers={"Content-Type": "application/json"})
    assert await _refused(resp, f"{base}.data.k") is None
    assert "repeated" in (await resp.json())["detail"]
    assert await count(db) == before


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**30])
async def test_manifest_integers_kubernetes_cannot_hold_are_refused_naming_them(seeded, db, number):
    before = await count(db)
    manifest = {**CONFIGMAP, "spec": {"replicas": number}}
    resp = await seeded.post("/v1/deployments/web/revisions", json={"manifests": [manifest]})
    assert await _refused(resp, "manifests[0].spec.replicas") is None
    fits = {**CONFIGMAP, "spec": {"replicas": 2**63 - 1}}
    assert (await seeded.post("/v1/deployments/web/revisions", json={"manifests": [fits]})).status == 201
    assert await count(db) == before + 1


async def test_yaml_manifests_with_nul_or_huge_integers_are_refused_naming_the_field(seeded, db):
    before = await count(db)
    base = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
    for text, field in [(base + 'data:\n  k: "a\\0b"\n', "manifests[0].data.k"),
                        (base + "spec:\n  n: 18446744073709551616\n", "manifests[0].spec.n")]:
        resp = await seeded.post("/v1/deployments/web/revisions", data=text,
                                 headers={"Content-Type": "application/yaml"})
        assert await _refused(resp, field) is None, text
    assert await count(db) == before


@pytest.mark.parametrize(("field", "request_args"), [
    ("$.events[0].metadata.reason", ("POST", "/v1/streams/target-eu-9/events", {"events": [
        {"type": "TargetRegistered", "data": {"target": "eu-9", "credentials": "web"},
         "metadata": {"reason": "a\u0000"}}]})),
    ("$.manifests[0].data.k", ("POST", "/v1/deployments/web/revisions", {"manifests": [
        {**CONFIGMAP, "data": {"k": "a\u0000"}}]})),
    ("$.message", ("POST", "/v1/deployments/web/revisions", {"manifests": [CONFIGMAP], "message": "a\u0000"})),
    ("$.server", ("PUT", "/v1/targets/eu-9", {"credentials": "web", "server": "https://x\u0000"})),
    ("$.credentials", ("PUT", "/v1/targets/eu-9", {"credentials": "web\u0000"})),
    ("$.credentials_ref", ("PUT", "/v1/targets/eu-9", {"credentials": "web", "credentials_ref": "a\u0000"})),
    ("$.reason", ("POST", "/v1/deployments/web/pause", {"reason": "a\u0000"})),
    ("$.labels", ("PUT", "/v1/targets/eu-9", {"credentials": "web", "labels": {"a\u0000": "b"}})),
    ("reason", ("DELETE", "/v1/deployments/web?reason=a%00", None)),
    ("message", ("POST", "/v1/deployments/web/revisions?message=a%00", "yaml")),
])
async def test_nul_answers_422_naming_the_field_not_postgresql_text(seeded, db, field, request_args):
    before = await count(db)
    method, path, body = request_args
    if body == "yaml":
        resp = await seeded.request(method, path, data="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
                                    headers={"Content-Type": "application/yaml"})
    else:
        resp = await seeded.request(method, path, json=body)
    assert await _refused(resp, field, prefix=field == "$.labels") is None
    assert "NUL" in (await resp.json())["detail"]
    assert await count(db) == before


@pytest.mark.parametrize(("labels", "field"), [
    ({"region": "x" * 64}, "labels.region"),
    ({"region": "x" * 900_000}, "labels.region"),
    ({"x" * 64: "eu"}, "labels"),
    (({"p" * 254 + "/name": "eu"}), "labels"),
    ({"example.com/" + "n" * 64: "eu"}, "labels"),
    ({"region": "eu\u0007"}, "labels.region"),
])
async def test_target_labels_follow_kubernetes_limits_and_errors_stay_short(seeded, db, labels, field):
    before = await count(db)
    resp = await seeded.put("/v1/targets/eu-9", json={"credentials": "web", "labels": labels})
    assert await _refused(resp, field, prefix=True) is None
    assert len(await resp.read()) < 2000
    assert await count(db) == before


@pytest.mark.parametrize("selector", ["region=" + "x" * 64, "region in (a," + "x" * 2_000 + ")",
                                      "x" * 64 + "=a", "p" * 254 + "/a=b", "region=eu\u0000"])
async def test_selectors_follow_the_same_limits_in_queries_and_revisions(seeded, db, selector):
    before = await count(db)
    listed = await seeded.get("/v1/targets", params={"selector": selector})
    assert await _refused(listed, "selector") is None
    submitted = await seeded.post("/v1/deployments/web/revisions", json={"manifests": [CONFIGMAP], "selector": selector})
    assert await _refused(submitted, "selector" if "\u0000" not in selector else "$.selector") is None
    assert len(await submitted.read()) < 2000
    assert await count(db) == before
