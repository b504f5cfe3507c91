from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from projections.diffs import render_yaml, unified_diff


def deployment(
    image: str = "registry.example/web:1.0", name: str = "web", namespace: str = "prod"
) -> dict[str, Any]:
    return {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}
            },
            "replicas": 3,
        },
        "metadata": {"namespace": namespace, "name": name, "labels": {"tier": "front", "app": "web"}},
        "kind": "Deployment",
        "apiVersion": "apps/v1",
    }


def config_map(data: dict[str, str], name: str = "cfg") -> dict[str, Any]:
    return {
        "data": data,
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "prod"},
    }


NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}


def test_render_yaml_is_canonical() -> None:
    rendered = render_yaml([deployment(), NAMESPACE, config_map({"b": "2", "a": "héllo"})])
    assert rendered == (
        "---\n"
        "apiVersion: v1\n"
        "kind: Namespace\n"
        "metadata:\n"
        "  name: prod\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: cfg\n"
        "  namespace: prod\n"
        "data:\n"
        "  a: héllo\n"
        "  b: '2'\n"
        "---\n"
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        "  labels:\n"
        "    app: web\n"
        "    tier: front\n"
        "  name: web\n"
        "  namespace: prod\n"
        "spec:\n"
        "  replicas: 3\n"
        "  template:\n"
        "    spec:\n"
        "      containers:\n"
        "      - image: registry.example/web:1.0\n"
        "        name: web\n"
        "        ports:\n"
        "        - containerPort: 80\n"
    )


def test_render_yaml_of_nothing_is_empty() -> None:
    assert render_yaml([]) == ""


def test_render_yaml_uses_literal_blocks_and_no_aliases() -> None:
    shared = {"k": "v"}
    rendered = render_yaml([{**config_map({"app.conf": "a=1\nb=2\n"}), "x": shared, "y": shared}])
    assert "  app.conf: |\n    a=1\n    b=2\n" in rendered
    assert "&" not in rendered and "*" not in rendered


def test_render_yaml_escapes_unicode_line_separators() -> None:
    rendered = render_yaml([config_map({"odd": "a\u2028b\x85c"})])
    assert "\u2028" not in rendered and "\x85" not in rendered
    assert yaml.safe_load(rendered)["data"]["odd"] == "a\u2028b\x85c"


def test_render_yaml_does_not_fold_long_lines() -> None:
    value = " ".join(["word"] * 100)
    assert f"  long: {value}\n" in render_yaml([config_map({"long": value})])


def test_render_yaml_does_not_modify_its_input() -> None:
    manifests = [deployment(), NAMESPACE]
    before = copy.deepcopy(manifests)
    render_yaml(manifests)
    assert manifests == before


def test_equal_sets_diff_to_nothing() -> None:
    assert unified_diff([deployment()], [deployment()], from_label="a", to_label="b") == ""
    assert unified_diff([], [], from_label="a", to_label="b") == ""


def test_changed_image_shows_one_line_pair_under_labelled_headers() -> None:
    diff = unified_diff(
        [deployment(), NAMESPACE],
        [deployment("registry.example/web:1.1"), NAMESPACE],
        from_label="revision 4",
        to_label="revision 5",
    )
    lines = diff.splitlines()
    assert lines[:2] == ["--- revision 4", "+++ revision 5"]
    assert lines[2].startswith("@@ ")
    changed = [line for line in lines[3:] if line[:1] in "+-"]
    assert changed == ["-      - image: registry.example/web:1.0", "+      - image: registry.example/web:1.1"]


def test_changed_config_line_shows_only_that_line() -> None:
    old = [config_map({"app.conf": "a=1\nb=2\nc=3\n"})]
    new = [config_map({"app.conf": "a=1\nb=20\nc=3\n"})]
    changed = [
        line
        for line in unified_diff(old, new, from_label="a", to_label="b").splitlines()[2:]
        if line[:1] in "+-"
    ]
    assert changed == ["-    b=2", "+    b=20"]


def test_reordering_manifests_and_keys_yields_no_diff() -> None:
    old = [NAMESPACE, deployment(), config_map({"a": "1", "b": "2"})]
    new = [config_map({"b": "2", "a": "1"}), deployment(), NAMESPACE]
    new[1]["metadata"] = dict(reversed(list(new[1]["metadata"].items())))
    assert unified_diff(old, new, from_label="a", to_label="b") == ""


def test_added_and_removed_objects() -> None:
    diff = unified_diff(
        [NAMESPACE], [NAMESPACE, config_map({"a": "1"})], from_label="a", to_label="b", context=0
    )
    added = [line for line in diff.splitlines()[2:] if not line.startswith("@@")]
    assert added and all(line.startswith("+") for line in added)
    assert "+kind: ConfigMap" in added


_KEYS = st.text(alphabet="abcxyz-._", min_size=1, max_size=6)
_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)
_MANIFESTS = st.builds(
    lambda name, kind, namespace, extra: {
        **extra,
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
    },
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.sampled_from(["ConfigMap", "Secret", "Service"]),
    st.sampled_from(["", "prod", "dev"]),
    st.dictionaries(_KEYS.filter(lambda k: k not in ("apiVersion", "kind", "metadata")), _VALUES, max_size=3),
)


@given(st.lists(_MANIFESTS, max_size=5), st.randoms())
def test_rendering_ignores_order_and_round_trips(manifests: list[dict[str, Any]], random: Any) -> None:
    shuffled = list(manifests)
    random.shuffle(shuffled)
    rendered = render_yaml(manifests)
    assert render_yaml(shuffled) == rendered
    assert unified_diff(manifests, shuffled, from_label="a", to_label="b") == ""
    loaded = [document for document in yaml.safe_load_all(rendered)]
    assert sorted(map(repr, map(_sorted, loaded))) == sorted(map(repr, map(_sorted, manifests)))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value
