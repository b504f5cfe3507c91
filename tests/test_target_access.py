"""Registering a target: it names one of the operator's credentials, and everything about its access
that can be checked without contacting the cluster is checked at the door (422 naming the field,
nothing written)."""

from __future__ import annotations

import uuid

import pytest

from api import keys
from ledger import records
from tests import credfiles
from tests.projected import live_client, read  # noqa: F401 - fixture


@pytest.fixture
def catalogue(client, tmp_path):
    credfiles.add(tmp_path, **{
        "eu-1": {"server": "https://eu-1.example:6443", "token_file": str(tmp_path / "eu-1.token")},
        "lab": {"server": "http://127.0.0.1:8081/clusters/lab", "anonymous": True},
    })
    return client


@pytest.mark.parametrize(("body", "field", "says"), [
    ({}, "credentials", "must name a credential"),
    ({"server": "https://eu-1.example:6443"}, "credentials", "must name a credential"),
    ({"credentials": "us-9"}, "credentials", "no credential named 'us-9'"),
    ({"credentials": "token-file:/etc/hostname"}, "credentials", "no credential named"),
    ({"credentials": "../credentials.yaml"}, "credentials", "no credential named"),
    ({"credentials": "eu-1", "server": "https://evil.example:6443"}, "server", "is not the API server of credential"),
    ({"credentials": "eu-1", "server": "https://eu-1.example:6444"}, "server", "is not the API server"),
    ({"credentials": "eu-1", "server": "http://eu-1.example:6443"}, "server", "is not the API server"),
    ({"credentials": "eu-1", "server": "ftp://eu-1.example"}, "server", "https://"),
    ({"credentials": "eu-1", "server": "https://"}, "server", "names no host"),
    ({"credentials": "eu-1", "server": "https://me@eu-1.example:6443"}, "server", "user information"),
    ({"credentials": "eu-1", "server": "https://eu-1.example:6443/?x=1"}, "server", "query"),
    ({"credentials": "eu-1", "server": "https://eu-1.example:6443/#x"}, "server", "fragment"),
    ({"credentials": "eu-1", "server": "https://eu-1.example:99999"}, "server", "not a valid URL"),
    ({"credentials": "eu-1", "server": "https://eu-1.example :6443"}, "server", "spaces"),
    ({"credentials": "eu-1", "credentials_ref": "token-file:/etc/hostname"}, "credentials_ref", "no longer accepted"),
    ({"credentials": "eu-1", "ca_ref": "/etc/ssl/private/key.pem"}, "ca_ref", "no longer accepted"),
    ({"credentials": "eu-1", "context": "other"}, "context", "no longer accepted"),
    ({"credentials": "eu-1", "insecure": True}, "insecure", "no longer accepted"),
])
async def test_registration_refuses_what_the_catalogue_does_not_allow(catalogue, db, body, field, says):
    response = await catalogue.put("/v1/targets/t1", json={"labels": {"region": "eu"}, **body})
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["field"] == field and says in problem["detail"]
    assert "me@" not in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_target_may_repeat_its_credentials_server_in_any_equal_spelling(catalogue, db):
    for name, server in (("a", None), ("b", "https://eu-1.example:6443"), ("c", "https://EU-1.example:6443/"),
                         ("d", "http://127.0.0.1:8081/clusters/lab/")):
        credential = "lab" if name == "d" else "eu-1"
        body = {"credentials": credential, **({"server": server} if server else {})}
        response = await catalogue.put(f"/v1/targets/{name}", json=body)
        assert response.status == 201, await response.text()
    assert await db.fetchval("SELECT count(*) FROM events") == 4


async def test_a_credential_added_to_the_file_can_be_named_without_a_restart(catalogue, tmp_path):
    before = await catalogue.put("/v1/targets/t1", json={"credentials": "us-1"})
    assert before.status == 422
    credfiles.add(tmp_path, **{"us-1": {"server": "https://us-1.example:6443", "anonymous": True}})
    after = await catalogue.put("/v1/targets/t1", json={"credentials": "us-1"})
    assert after.status == 201, await after.text()


async def test_no_credentials_file_means_no_target_can_be_registered(aiohttp_client, settings, db, tmp_path):
    from api import app as app_mod

    client = await aiohttp_client(app_mod.make_app(settings.replace(credentials=None, data_dir=tmp_path / "d")))
    assert client.app[keys.CREDENTIALS].current() == {}
    response = await client.put("/v1/targets/t1", json={"credentials": "eu-1"})
    assert response.status == 422 and "no credentials file is loaded" in (await response.json())["detail"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_the_target_shows_its_credential_and_an_old_event_still_folds(live, tmp_path):
    credfiles.add(tmp_path, **{"eu-1": {"server": "https://eu-1.example:6443", "anonymous": True}})
    response = await live.put("/v1/targets/eu-1", json={"credentials": "eu-1", "labels": {"region": "eu"}})
    assert response.status == 201
    # As recorded before named credentials (the generic endpoint of that version took it as is).
    old = await live.app[keys.STORE].append("target-old", "no_stream", [records.NewEvent(
        id=uuid.uuid4(), type="TargetRegistered",
        data={"target": "old", "server": "https://old:6443", "credentials_ref": "token-file:/etc/old.token"},
        metadata={})])
    found = await read(live, "/v1/targets?include_retired=true", old.positions[0])
    rows = {t["name"]: t for t in found["targets"]}
    assert rows["eu-1"]["credentials"] == "eu-1" and rows["eu-1"]["server"] is None
    assert rows["old"]["credentials"] is None and rows["old"]["credentials_ref"] == "token-file:/etc/old.token"


async def test_metrics_export_the_catalogue_and_failed_reloads(catalogue, tmp_path):
    catalogue.app[keys.CREDENTIALS].refresh()
    (tmp_path / "credentials.yaml").write_text("credentials: [broken\n")
    catalogue.app[keys.CREDENTIALS].refresh()
    text = await (await catalogue.get("/metrics")).text()
    assert "ledger_credentials_loaded 2.0" in text
    assert "ledger_credentials_reload_errors_total 1.0" in text
