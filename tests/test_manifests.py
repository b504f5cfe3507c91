from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.manifests import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFESTS,
    ManifestError,
    ObjectKey,
    key_of,
    parse_yaml,
    validate,
)
from projections.selectors import InvalidInput


def manifest(
    name: str = "web",
    *,
    namespace: str | None = "prod",
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    **metadata: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **metadata}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def error_of(manifests: Any) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        validate(manifests)
    return caught.value


def yaml_error_of(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_yaml(text)
    assert caught.value.field == "manifests_yaml"
    return caught.value


# parse_yaml


def test_parse_yaml_reads_documents_and_skips_empty_ones() -> None:
    text = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  when: 2024-01-01T00:00:00Z
  eq: =
---
# only a comment
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: wéb}
...
"""
    manifests = parse_yaml(text)
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Deployment"]
    assert manifests[0]["data"] == {"when": "2024-01-01T00:00:00Z", "eq": "="}
    assert manifests[1]["metadata"]["labels"] == {"app": "wéb"}


def test_parse_yaml_of_nothing_is_empty() -> None:
    assert parse_yaml("") == []
    assert parse_yaml("---\n---\n") == []


def test_parse_yaml_flattens_lists() -> None:
    text = """
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- apiVersion: v1
  kind: ConfigMapList
  items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: d}}
---
apiVersion: v1
kind: ServiceList
items: []
---
apiVersion: example.com/v1
kind: AllowList
spec: {items: 3}
"""
    manifests = parse_yaml(text)
    assert [m["metadata"]["name"] for m in manifests[:4]] == ["a", "b", "c", "d"]
    assert manifests[4]["kind"] == "AllowList"
    assert len(manifests) == 5


@pytest.mark.parametrize(
    ("text", "index", "fragment"),
    [
        ("a: 1\n---\n---\nb: [1\n", 2, "line 5, column 1"),
        ("a: b\n  c: d\n", 0, "invalid YAML at line 2, column 4: mapping values are not allowed"),
        ("a: 1\nb: 2\na: 3\n", 0, "line 3, column 1: found duplicate key 'a'"),
        ("a: !custom x\n", 0, "line 1, column 4"),
        ("a: 1\n---\nb: \x00\n", None, "line 3, column 4: character U+0000 is not allowed"),
        ("é: 1\n\x00", None, "line 2, column 1"),
        ("a: 1\nb: \ud800\n", None, "line 2, column 4: not valid Unicode"),
        ("x: " + "1" * 5000, 0, "document 0 cannot be read"),
    ],
)
def test_parse_yaml_syntax_errors_name_line_and_column(text: str, index: int | None, fragment: str) -> None:
    error = yaml_error_of(text)
    assert error.index == index
    assert fragment in error.message


def test_merge_keys_are_not_duplicates() -> None:
    manifests = parse_yaml("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n")
    assert manifests[0]["derived"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    ("text", "index", "fragment"),
    [
        ("---\na: 1\n---\n- 1\n", 1, "document 1 is a sequence, expected a mapping"),
        ("just a string\n", 0, "document 0 is a string"),
        ("kind: List\nitems: [{a: 1}, 5]\n", 0, "document 0 items[1] is a number"),
        ("kind: List\n", 0, "List without an items sequence"),
    ],
)
def test_parse_yaml_rejects_documents_that_are_not_mappings(text: str, index: int, fragment: str) -> None:
    error = yaml_error_of(text)
    assert error.index == index
    assert fragment in error.message


# validate


def test_validate_returns_the_manifests_unchanged() -> None:
    manifests = [
        manifest(labels={"app.kubernetes.io/name": "web"}, annotations={"note": "anything at all\n"}),
        manifest("cfg", kind="ConfigMap", api_version="v1", labels=None),
        manifest("ns", kind="Namespace", api_version="v1", namespace=None),
        manifest("empty-namespace", namespace=""),
    ]
    checked = validate(manifests)
    assert checked == manifests
    assert all(a is b for a, b in zip(checked, manifests, strict=True))


@pytest.mark.parametrize(
    ("bad", "field", "fragment"),
    [
        ("nope", "manifests[1]", "must be a mapping, got a string"),
        ({"kind": "X", "metadata": {"name": "x"}}, "manifests[1].apiVersion", "is required"),
        ({**manifest(), "apiVersion": 1}, "manifests[1].apiVersion", "must be a string"),
        ({**manifest(), "apiVersion": "a/b/c"}, "manifests[1].apiVersion", '"<group>/<version>"'),
        ({**manifest(), "kind": ""}, "manifests[1].kind", "must not be empty"),
        ({"apiVersion": "v1", "kind": "X"}, "manifests[1].metadata", "is required"),
        ({**manifest(), "metadata": []}, "manifests[1].metadata", "must be a mapping"),
        (manifest(""), "manifests[1].metadata.name", "must not be empty"),
        (manifest("Web"), "manifests[1].metadata.name", "RFC 1123 subdomain"),
        (manifest("a" * 254), "manifests[1].metadata.name", "no more than 253"),
        (manifest(namespace="a.b"), "manifests[1].metadata.namespace", "RFC 1123 label"),
        (manifest(namespace="a" * 64), "manifests[1].metadata.namespace", "no more than 63"),
        (manifest(labels=["a"]), "manifests[1].metadata.labels", "must be a mapping"),
        (manifest(labels={"a b": "c"}), 'manifests[1].metadata.labels["a b"]', "invalid label key"),
        (manifest(labels={"app": "v 1"}), "manifests[1].metadata.labels.app", "invalid label value"),
        (manifest(labels={"v": 1.0}), "manifests[1].metadata.labels.v", "must be strings"),
        (
            manifest(annotations={"a/b/c": "x"}),
            'manifests[1].metadata.annotations["a/b/c"]',
            "invalid annotation key",
        ),
        (manifest(annotations={"a": 1}), "manifests[1].metadata.annotations.a", "must be strings"),
        ({**manifest(), "spec": {"a": [1, {"b": float("inf")}]}}, "manifests[1].spec.a[1].b", "finite"),
        ({**manifest(), "spec": {8080: "x"}}, 'manifests[1].spec["8080"]', "keys must be strings"),
        ({**manifest(), "spec": {"x": b"raw"}}, "manifests[1].spec.x", "not a JSON value"),
        ({**manifest(), "spec": {"x": {1, 2}}}, "manifests[1].spec.x", "not a JSON value"),
    ],
)
def test_validate_names_the_offending_field(bad: Any, field: str, fragment: str) -> None:
    error = error_of([manifest("first"), bad])
    assert error.index == 1
    assert error.field == field
    assert fragment in error.message
    assert str(error) == f"{field}: {error.message}"


def test_validate_accepts_annotation_values_and_case_insensitive_prefixes() -> None:
    validate([manifest(annotations={"Example.COM/Note": "a long\nfree-form value: with anything!"})])


def test_validate_needs_at_least_one_manifest() -> None:
    error = error_of([])
    assert (error.index, error.field) == (None, "manifests")


@pytest.mark.parametrize("not_a_list", ["text", {"apiVersion": "v1"}, None, 3])
def test_validate_needs_a_sequence(not_a_list: Any) -> None:
    assert error_of(not_a_list).field == "manifests"


def test_validate_limits_the_number_of_manifests() -> None:
    many = [manifest(f"cm-{i}", kind="ConfigMap", api_version="v1") for i in range(MAX_MANIFESTS)]
    assert len(validate(many)) == MAX_MANIFESTS
    error = error_of([*many, manifest("one-more")])
    assert (error.index, error.field) == (None, "manifests")
    assert str(MAX_MANIFESTS) in error.message


def test_validate_limits_the_encoded_size() -> None:
    base = manifest()
    overhead = len(json.dumps({**base, "data": {"x": ""}}, separators=(",", ":")).encode())
    fits = {**base, "data": {"x": "a" * (MAX_MANIFEST_BYTES - overhead)}}
    validate([fits])
    multibyte = {**base, "data": {"x": "é" * ((MAX_MANIFEST_BYTES - overhead) // 2 + 1)}}
    error = error_of([manifest("first"), multibyte])
    assert (error.index, error.field) == (1, "manifests[1]")
    assert "KiB" in error.message
    assert "KiB" in error_of([{**base, "data": {"x": "a" * (MAX_MANIFEST_BYTES + 1)}}]).message


def test_validate_survives_alias_bombs_and_deep_nesting() -> None:
    bomb: list[Any] = ["lol" * 10]
    for _ in range(40):
        bomb = [bomb, bomb]
    assert "KiB" in error_of([{**manifest(), "spec": bomb}]).message
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    assert "nested deeper" in error_of([{**manifest(), "spec": deep}]).message


@pytest.mark.parametrize(
    ("other", "duplicate"),
    [
        (manifest(), True),
        (manifest(api_version="apps/v1beta2"), True),
        (manifest(api_version="extensions/v1beta1"), False),
        (manifest(kind="StatefulSet"), False),
        (manifest(namespace="staging"), False),
        (manifest(namespace=None), False),
        (manifest("web-2"), False),
    ],
)
def test_validate_rejects_two_manifests_for_one_object(other: dict[str, Any], duplicate: bool) -> None:
    manifests = [manifest(), manifest("db"), other]
    if not duplicate:
        validate(manifests)
        return
    error = error_of(manifests)
    assert (error.index, error.field) == (2, "manifests[2].metadata.name")
    assert "manifests[0]" in error.message


def test_core_group_objects_collide_across_versions() -> None:
    error = error_of([manifest("c", kind="ConfigMap", api_version="v1")] * 2)
    assert error.message == "ConfigMap prod/c is already defined by manifests[0]"


def test_manifest_error_is_an_invalid_input() -> None:
    error = error_of([manifest("Bad")])
    assert isinstance(error, InvalidInput)
    assert isinstance(error, ValueError)
    assert error.args == (0, "manifests[0].metadata.name", error.message)


# key_of


def test_key_of() -> None:
    key = key_of(manifest())
    assert key == ObjectKey("apps/v1", "Deployment", "prod", "web")
    assert key.group == "apps"
    assert key.to_dict() == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "prod",
        "name": "web",
    }
    assert str(key) == "Deployment.apps prod/web"
    cluster = key_of(manifest("ops", kind="Namespace", api_version="v1", namespace=None))
    assert cluster.namespace is None
    assert cluster.group == ""
    assert cluster.to_dict() == {"apiVersion": "v1", "kind": "Namespace", "name": "ops"}
    assert str(cluster) == "Namespace ops"
    assert key_of(manifest(namespace="")).namespace is None
    with pytest.raises(AttributeError):
        key.name = "other"  # type: ignore[misc]


def test_key_of_without_identity() -> None:
    with pytest.raises(ManifestError) as caught:
        key_of({"apiVersion": "v1", "kind": "X", "metadata": {}})
    assert (caught.value.index, caught.value.field) == (None, "metadata.name")


_NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    st.lists(st.tuples(st.sampled_from(["v1", "apps/v1"]), st.sampled_from(["A", "B"]), _NAMES), max_size=12)
)
def test_validate_rejects_duplicates_exactly_when_keys_repeat(specs: list[tuple[str, str, str]]) -> None:
    manifests = [manifest(name, kind=kind, api_version=api) for api, kind, name in specs]
    identities = [(api.rpartition("/")[0], kind, name) for api, kind, name in specs]
    if not manifests:
        return
    if len(set(identities)) == len(identities):
        assert validate(manifests) == manifests
    else:
        error = error_of(manifests)
        assert error.index is not None
        assert identities[error.index] in identities[: error.index]
