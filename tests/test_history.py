"""History as version control: who deployed what, where, when and why; one revision; diffs."""

from __future__ import annotations

import yaml

from tests.projected import live_client, read, register, submit  # noqa: F401 - fixture
from tests.tokens_support import issue


async def _history(live):
    await register(live, "eu-1", region="eu")
    await register(live, "us-1", region="us")
    alice, bob, carol = [await issue(live, name) for name in ("alice", "bob", "carol")]
    await live.post("/v1/deployments/web/revisions", headers=alice,
                    json={"manifests": _configmap("1"), "selector": "region=eu", "message": "first"})
    await live.post("/v1/deployments/web/revisions", headers=bob,
                    json={"manifests": _configmap("2", extra="x"), "selector": "", "message": "widen"})
    response = await live.post("/v1/deployments/web/rollback", headers=carol,
                               json={"to_revision": 1, "message": "bad widen"})
    return (await response.json())["position"]


def _configmap(value: str, **more: str):
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "apps"},
             "data": {"k": value, **more}}]


async def test_the_revision_log_says_who_when_why_where_and_what_was_restored(live):
    position = await _history(live)
    history = await read(live, "/v1/deployments/web/revisions", position)
    assert [(r["revision"], r["actor"], r["message"], r["selector"], r["matched_targets"], r["rolled_back_to"])
            for r in history["revisions"]] == [
        (1, "alice", "first", "region=eu", ["eu-1"], None),
        (2, "bob", "widen", "", ["eu-1", "us-1"], None),
        (3, "carol", "bad widen", "region=eu", ["eu-1"], 1),
    ]
    assert all(r["recorded_at"].endswith("Z") for r in history["revisions"])
    page = await read(live, "/v1/deployments/web/revisions?from_revision=2&limit=1", position)
    assert ([r["revision"] for r in page["revisions"]], page["next_from_revision"]) == ([2], 3)


async def test_one_revision_returns_its_manifests_as_json_or_yaml(live):
    position = await _history(live)
    restored = await read(live, "/v1/deployments/web/revisions/3", position)
    assert restored["manifests"] == _configmap("1")
    as_yaml = await live.get("/v1/deployments/web/revisions/2", headers={"Accept": "application/yaml"})
    assert as_yaml.content_type == "application/yaml"
    assert list(yaml.safe_load_all(await as_yaml.text())) == _configmap("2", extra="x")
    missing = await live.get("/v1/deployments/web/revisions/9")
    assert missing.status == 404 and (await missing.json())["field"] == "revision"


async def test_diff_is_a_unified_diff_of_yaml_as_text_or_json(live):
    position = await _history(live)
    text = await live.get(f"/v1/deployments/web/diff?from=1&to=2&min_position={position}",
                          headers={"Accept": "text/plain"})
    assert text.content_type == "text/plain"
    assert (await text.text()).splitlines() == [
        "--- web/revisions/1",
        "+++ web/revisions/2",
        "@@ -5,4 +5,5 @@",
        "   name: web",
        "   namespace: apps",
        " data:",
        "-  k: '1'",
        "+  extra: x",
        "+  k: '2'",
    ]
    default = await read(live, "/v1/deployments/web/diff", position)
    assert (default["from"], default["to"]) == (2, 3)
    assert "-  extra: x" in default["diff"]
    same = await read(live, "/v1/deployments/web/diff?from=1&to=3", position)
    assert same["diff"] == ""


async def test_history_of_an_unknown_deployment_is_404(live):
    position = (await register(live, "eu-1"))["position"]
    for path in ("/v1/deployments/nope/revisions", "/v1/deployments/nope/diff", "/v1/deployments/nope"):
        response = await live.get(f"{path}?min_position={position}")
        assert response.status == 404, path
