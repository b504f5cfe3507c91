"""Metrics: every metric docs/operations.md lists is exported, with its type and labels, and every
exported one is listed; the example alert rules parse as PromQL and name only listed metrics; and
the new metrics move with what they measure (api/metrics.py)."""

from __future__ import annotations

import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import parser as prom_parser

from api import app as app_mod
from api import keys, live
from emulator.faults import Fault
from ledger import db as db_mod
from ledger import events
from ledger import settings as settings_mod
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    namespace,
    register,
    submit,
)
from tests.applier_support import fast as fast_settings
from tests.test_applier_failures import CONFIGMAPS
from tests.test_projector_stall import insert_raw_data

pytestmark = pytest.mark.timeout(90)

DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
_ROW = re.compile(r"^\| `(ledger_[a-z_]+)` \| (counter|gauge|histogram) \|\s*([a-z_, ]*?)\s*\|", re.MULTILINE)


def _section(heading: str) -> str:
    return DOC.read_text().split(f"\n### {heading}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """The table under "Metrics": name as exported -> (type, labels)."""
    rows = _ROW.findall(_section("Metrics"))
    found = {name: (kind, frozenset(x.strip() for x in labels.split(",") if x.strip()))
             for name, kind, labels in rows}
    assert len(found) == len(rows) > 30, "the table lists a metric twice, or the table was not found"
    return found


def rules() -> list[dict]:
    block = _section("Alert rules").split("```yaml\n", 1)[1].split("```", 1)[0]
    return [rule for group in yaml.safe_load(block)["groups"] for rule in group["rules"]]


def family(name: str, kind: str) -> str:
    """The family name prometheus_client's parser gives a documented metric."""
    return name.removesuffix("_total") if kind == "counter" else name


def series(name: str, kind: str) -> set[str]:
    """The sample names a metric is queried by."""
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


async def scrape(client) -> dict:  # noqa: F811
    text = await (await client.get("/metrics")).text()
    return {f.name: f for f in prom_parser.text_string_to_metric_families(text)}


def value(families: dict, name: str, **labels: str) -> float:
    for fam in families.values():
        for sample in fam.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels}")


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings, projector=True)


async def test_every_documented_metric_is_exported_as_documented_and_nothing_else(client):  # noqa: F811
    """With every component running (API, projector, applier): the doc's table is the exposition."""
    await eventually(lambda: _ready(client), what="applier ready")
    assert (await client.get("/v1/events")).status == 200
    families = await scrape(client)
    listed = documented()
    problems = []
    for name, (kind, labels) in listed.items():
        found = families.get(family(name, kind))
        if found is None:
            problems.append(f"{name}: documented, not exported")
            continue
        if found.type != kind:
            problems.append(f"{name}: documented as {kind}, exported as {found.type}")
        for sample in found.samples:
            keys_ = set(sample.labels) - {"le"}
            if keys_ != labels:
                problems.append(f"{name}: documented labels {sorted(labels)}, exported {sorted(keys_)}")
                break
    exported = {name for name in families}
    undocumented = exported - {family(n, k) for n, (k, _) in listed.items()}
    problems += [f"{name}: exported, not documented in docs/operations.md" for name in sorted(undocumented)]
    assert problems == [], "\n".join(problems)


async def _ready(client):  # noqa: F811
    return client.app[keys.APPLIER].ready.is_set()


def test_the_alert_rules_parse_as_promql_and_name_only_documented_metrics():
    listed = documented()
    known = {s for name, (kind, _) in listed.items() for s in series(name, kind)}
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) == {"LedgerProjectorStalled", "LedgerApplierNotProgressing", "LedgerTargetsDegraded",
                          "LedgerDatabaseUnavailable"}
    for alert, rule in found.items():
        expr = promql_parser.parse(rule["expr"])
        named: list[str] = []

        def visit(node, named=named):
            if isinstance(node, promql_parser.VectorSelector):
                named.append(node.name)

        promql_parser.walk(expr, visit)
        assert named, alert
        assert set(named) <= known, f"{alert} names {sorted(set(named) - known)}, not in the metrics table"
        assert rule.get("for") and rule["labels"]["severity"] in ("warning", "critical")


def test_a_broken_rule_does_not_parse():
    """The parse above can fail: the parser refuses what Prometheus would."""
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (instance) (rate(ledger_db_errors_total[5m]) > ")


async def test_an_apply_moves_the_applier_rollout_and_http_metrics(client, store, emu):  # noqa: F811
    put = await client.put("/v1/targets/eu-1", json={"labels": {"region": "eu"}, "credentials": "eu-1"})
    assert put.status == 201
    revision = await submit(store, "web", [configmap("web-config", greeting="hi"), namespace()], "region=eu")

    async def applied():
        families = await scrape(client)
        states = {s.labels["state"]: s.value for s in families["ledger_rollout_targets"].samples
                  if s.labels["deployment"] == "web"}
        done = value(families, "ledger_applier_outcomes_total", result="succeeded") == 1
        return families if done and states.get("pending") == 0 and sum(states.values()) == 1 else None

    families = await eventually(applied, what="outcome counted and the rollout folded")
    assert {s.labels["state"] for s in families["ledger_rollout_targets"].samples} == {
        "pending", "applying", "progressing", "healthy", "degraded", "failed", "paused"}
    assert value(families, "ledger_apply_duration_seconds_count") == 1
    assert value(families, "ledger_apply_duration_seconds_bucket", le="+Inf") == 1
    assert value(families, "ledger_applier_claims") == 1
    assert value(families, "ledger_applier_retries_total") == 0
    assert value(families, "ledger_applier_outcomes_total", result="failed") == 0
    assert value(families, "ledger_http_requests_total", route="/v1/targets/{name}", method="PUT",
                 status="201") == 1
    assert revision == 1


async def test_a_failed_apply_retried_counts_a_retry(client, store, emu):  # noqa: F811
    await register(store, emu, "eu-1", region="eu")
    emu.cluster("eu-1").add_fault(Fault(status=500, method="PATCH", path=CONFIGMAPS, count=2))
    await submit(store, "web", [configmap("web-config", greeting="hi"), namespace()], "region=eu")

    async def retried():
        families = await scrape(client)
        ok = value(families, "ledger_applier_outcomes_total", result="succeeded") == 1
        return families if ok else None

    families = await eventually(retried, what="applied after retries")
    assert value(families, "ledger_applier_outcomes_total", result="retryable") >= 1
    assert value(families, "ledger_applier_retries_total") >= 1


async def test_projector_lag_shows_a_stall_in_positions_and_seconds(client, store, db):  # noqa: F811
    first = await append(store, events.TargetRegistered(target="eu-1", labels={}, server="https://eu-1"))

    async def caught_up():
        families = await scrape(client)
        at_head = value(families, "ledger_projector_position") >= first
        return families if at_head else None

    families = await eventually(caught_up, what="projector at the head")
    assert value(families, "ledger_projector_lag_positions") == 0
    assert value(families, "ledger_projector_lag_seconds") == 0
    await insert_raw_data(db, "deployment-web", "RevisionSubmitted", {"deployment": "web", "manifests": 1})
    await append(store, events.TargetRegistered(target="eu-2", labels={}, server="https://eu-2"))

    async def lagging():
        families = await scrape(client)
        behind = value(families, "ledger_projector_lag_positions") == 2
        return families if behind and value(families, "ledger_projector_lag_seconds") > 0 else None

    await eventually(lagging, what="lag of the two events behind the stall")


async def test_database_errors_are_counted_by_kind(client, store):  # noqa: F811
    before = dict(db_mod.ERRORS)
    with pytest.raises(Exception, match="division by zero"):
        async with store.connection() as conn:
            await conn.execute("SELECT 1 / 0")
    families = await scrape(client)
    assert value(families, "ledger_db_errors_total", kind="data") == before["data"] + 1
    assert db_mod.ERRORS["timeout"] == before["timeout"]


async def test_the_pools_in_use_are_exported(client, store):  # noqa: F811
    async with store.connection():
        families = await scrape(client)
    settings = client.app[keys.SETTINGS]
    assert value(families, "ledger_db_pool_connections", pool="default", state="in_use") >= 1
    assert value(families, "ledger_db_pool_max_connections", pool="default") == settings.db_pool_size
    assert value(families, "ledger_db_pool_max_connections", pool="expensive") >= settings.expensive_concurrency


async def test_a_process_without_the_applier_and_the_projector_exports_the_rest(aiohttp_client, settings):
    """A process runs only some roles: their metrics are absent, the others answer."""
    api_only = await aiohttp_client(app_mod.make_app(settings.replace(applier=False, projector=False)))
    families = await scrape(api_only)
    assert "ledger_applier_outcomes" not in families and "ledger_rollout_targets" not in families
    assert "ledger_projector_lag_positions" in families and "ledger_http_requests" in families
    assert live.CUT_OFF in api_only.app
