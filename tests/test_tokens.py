"""Tokens: issued and revoked as events, checked in memory, revoked everywhere within a second,
never shown twice, compared in constant time; and the CLI that manages them."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import uuid

import pytest

from api import app as app_mod
from cli import exits
from cli import main as cli_main
from ledger import events, records, secrets
from projections import tokens
from tests import credfiles, servers
from tests.tokens_support import bearer, issue


async def _status(client, headers) -> int:
    return (await client.get("/v1/targets?consistency=eventual", headers=headers)).status


async def _until(client, headers, status: int) -> None:
    while await _status(client, headers) != status:
        await asyncio.sleep(0.02)


async def test_a_revocation_takes_effect_in_another_process_within_one_second(aiohttp_client, settings, db):
    first = await aiohttp_client(app_mod.make_app(settings))
    second = await aiohttp_client(app_mod.make_app(settings))
    ci = await issue(first, "ci", "viewer")
    await asyncio.wait_for(_until(second, ci, 200), 5)  # the other process follows the log
    assert (await first.delete("/v1/tokens/ci")).status == 200
    assert await _status(first, ci) == 401  # at once where it was revoked
    await asyncio.wait_for(_until(second, ci, 401), 1.0)
    response = await second.get("/v1/targets", headers=ci)
    assert (await response.json())["detail"] == "the token was revoked"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_issuing_records_an_event_without_the_secret_and_shows_the_secret_only_once(client, db):
    response = await client.post("/v1/tokens", json={"name": "ci-eu", "role": "deployer", "targets": "region = eu",
                                                      "deployments": ["web-*"], "expires": "30d"})
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    secret = body.pop("token")
    assert secret.startswith("ldg_") and len(secret) == 47  # 32 random bytes, URL-safe base64
    assert body["scope"] == {"targets": "region=eu", "deployments": ["web-*"]}
    assert body["fingerprint"] == secrets.fingerprint(secrets.digest(secret))
    assert body["state"] == "active" and body["issued_by"] == "admin-env"
    row = await db.fetchrow("SELECT stream, type, data::text, metadata::text FROM events")
    assert (row["stream"], row["type"]) == ("token-ci-eu", "TokenIssued")
    assert secret not in row["data"] and secret not in row["metadata"]
    data = json.loads(row["data"])
    assert data["secret_sha256"] == secrets.digest(secret).hex()
    assert json.loads(row["metadata"])["actor"] == "admin-env"
    listed = await (await client.get("/v1/tokens")).json()
    shown = await (await client.get("/v1/tokens/ci-eu")).json()
    for text in (json.dumps(listed), json.dumps(shown)):
        assert secret not in text and data["secret_sha256"] not in text
    assert (await client.get("/v1/targets?consistency=eventual", headers=bearer(secret))).status == 200


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"name": "ci", "role": "viewer", "targets": "region=eu"}, 422, "targets"),
    ({"name": "ci", "role": "admin", "deployments": ["web-*"]}, 422, "deployments"),
    ({"name": "ci", "role": "deployer", "targets": "region in (eu"}, 422, "targets"),
    ({"name": "ci", "role": "deployer", "deployments": ["Web/*"]}, 422, "deployments[0]"),
    ({"name": "ci", "role": "root"}, 422, "$.role"),
    ({"name": "Not A Name", "role": "viewer"}, 422, "name"),
    ({"name": "ci", "role": "viewer", "expires": "forever"}, 422, "expires"),
    ({"name": "ci", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}, 422, "expires_at"),
    ({"name": "admin-env", "role": "viewer"}, 422, "name"),
])
async def test_bad_token_requests_are_refused_naming_the_field_and_nothing_is_written(client, db, body, status,
                                                                                        field):
    response = await client.post("/v1/tokens", json=body)
    assert response.status == status, await response.text()
    assert (await response.json())["field"] == field
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_name_is_issued_again_only_after_its_token_was_revoked(client, db):
    old = await issue(client, "ci", "viewer")
    again = await client.post("/v1/tokens", json={"name": "ci", "role": "viewer"})
    assert again.status == 409 and (await again.json())["field"] == "name"
    assert (await client.delete("/v1/tokens/ci")).status == 200
    assert (await client.delete("/v1/tokens/ci")).status == 409
    assert (await client.delete("/v1/tokens/nobody")).status == 404
    new = await issue(client, "ci", "viewer")
    assert await _status(client, old) == 401 and await _status(client, new) == 200
    types = [r["type"] for r in await db.fetch("SELECT type FROM events WHERE stream = 'token-ci' ORDER BY version")]
    assert types == ["TokenIssued", "TokenRevoked", "TokenIssued"]


async def test_appending_to_a_token_stream_through_the_generic_endpoint_is_403(client, db):
    forged = {"events": [{"type": "TokenIssued", "data": {"name": "x", "role": "admin", "secret_sha256": "00" * 32,
                                                            "fingerprint": "000000000000"}}]}
    response = await client.post("/v1/streams/token-x/events", json=forged)
    assert response.status == 403
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_x_actor_is_recorded_as_on_behalf_of_and_a_claimed_actor_is_refused(client, db, settings):
    ci = await issue(client, "ci-bot", "admin")
    credfiles.add_anonymous(settings, "eu-1")  # the generic append checks the credential as PUT does
    response = await client.post("/v1/streams/target-eu-1/events", headers={**ci, "X-Actor": "dana"}, json={
        "events": [{"type": "TargetRegistered", "data": {"target": "eu-1", "credentials": "eu-1"}}]})
    assert response.status == 201
    metadata = json.loads(await db.fetchval("SELECT metadata::text FROM events WHERE stream = 'target-eu-1'"))
    assert (metadata["actor"], metadata["on_behalf_of"]) == ("ci-bot", "dana")
    forged = await client.post("/v1/streams/target-eu-2/events", headers=ci, json={"events": [{
        "type": "TargetRegistered", "data": {"target": "eu-2", "credentials": "eu-1"},
        "metadata": {"actor": "dana"}}]})
    assert forged.status == 422 and (await forged.json())["field"] == "$.events[0].metadata.actor"
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'target-eu-2'") == 0


async def test_metrics_need_a_token_unless_made_public(aiohttp_client, settings):
    private = await aiohttp_client(app_mod.make_app(settings))
    assert (await private.get("/metrics", headers={"Authorization": ""})).status == 401
    assert (await private.get("/metrics")).status == 200
    public = await aiohttp_client(app_mod.make_app(settings.replace(metrics_public=True)))
    assert (await public.get("/metrics", headers={"Authorization": ""})).status == 200


def test_token_checks_compare_hashes_in_constant_time():
    assert "hmac.compare_digest" in inspect.getsource(secrets.same)
    source = inspect.getsource(tokens.check)
    assert source.count("secrets.same(") == 2
    assert "==" not in source.replace("!=", "")


def test_a_token_is_refused_once_its_expiry_passes():
    table = tokens.Table()
    secret = secrets.new()
    event = tokens.issue(table, "ci", "viewer", events.Scope(),
                         dt.datetime(2030, 1, 1, tzinfo=dt.UTC), secrets.digest(secret))
    tokens.apply(table, event, 1, 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "admin")
    before = dt.datetime(2029, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp()
    assert tokens.check(table, f"Bearer {secret}", before).name == "ci"
    with pytest.raises(tokens.Refused, match="expired"):
        tokens.check(table, f"Bearer {secret}", dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp())


def test_a_short_operator_admin_token_stops_start_up():
    from ledger import settings as settings_mod

    with pytest.raises(settings_mod.SettingsError, match="ADMIN_TOKEN"):
        settings_mod.load({"LEDGER_ADMIN_TOKEN": "hunter2"})
    assert "hunter2" not in repr(settings_mod.load({"LEDGER_ADMIN_TOKEN": "x" * 40}))


async def ledger(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli_main.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_cli_creates_lists_and_revokes_tokens(client, capsys):
    url = str(client.make_url("")).rstrip("/")
    code, out, err = await ledger(capsys, "tokens", "create", "ci-eu", "--role", "deployer", "--targets",
                                  "region=eu", "--deployments", "web-*,api", "--expires", "30d", "--url", url)
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("ldg_") and "shown this once" in err and secret not in err
    assert await _status(client, bearer(secret)) == 200
    code, out, _ = await ledger(capsys, "tokens", "list", "--url", url)
    row = next(line.split() for line in out.splitlines() if line.startswith("ci-eu"))
    assert row[:5] == ["ci-eu", "deployer", "active", "region=eu", "api,web-*"] and secret not in out
    code, out, _ = await ledger(capsys, "tokens", "revoke", "ci-eu", "--url", url)
    assert code == 0 and out.strip() == "token ci-eu: revoked"
    assert await _status(client, bearer(secret)) == 401
    code, _, err = await ledger(capsys, "tokens", "list", "--url", url, "--token", secrets.new())
    assert code == exits.Code.DENIED and "401" in err


def test_the_cli_falls_back_to_the_local_admin_token_file_only_for_a_local_service(tmp_path):
    from cli import credentials

    (tmp_path / "admin.token").write_text("ldg_local\n")
    env = {"LEDGER_DATA_DIR": str(tmp_path)}
    assert credentials.token(None, "http://127.0.0.1:8080", env) == "ldg_local"
    assert credentials.token(None, "http://localhost:8080", env) == "ldg_local"
    assert credentials.token(None, "https://ledger.example", env) is None
    assert credentials.token(None, "https://ledger.example", {**env, "LEDGER_TOKEN": "t"}) == "t"
    assert credentials.token("flag", "http://127.0.0.1:8080", {**env, "LEDGER_TOKEN": "t"}) == "flag"
    assert servers.ADMIN_TOKEN  # the suite's own token is not what these fall back to


def test_a_token_event_applied_by_its_writer_never_hides_an_earlier_one_from_the_follower():
    table = tokens.Table()
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first, second = secrets.new(), secrets.new()
    for position, name, secret in ((5, "a", first), (9, "b", second)):
        issued = tokens.issue(table, name, "viewer", events.Scope(), None, secrets.digest(secret))
        tokens.apply(table, issued, position, 1, at, "admin")
    # Another process revoked "a" at 7; this process issued "c" at 12 and applied it at once.
    tokens.apply(table, events.TokenIssued(name="c", role="viewer", secret_sha256="00" * 32,
                                           fingerprint="000000000000"), 12, 1, at, "admin")
    assert table.position == 0  # the follower's cursor: it still reads from the start, 7 included
    revoked = records.RecordedEvent(position=7, stream="token-a", version=2, id=uuid.uuid4(), type="TokenRevoked",
                                    data='{"name": "a"}', metadata='{"actor": "other"}', recorded_at=at,
                                    prev_hash="", hash="")
    tokens.apply_recorded(table, revoked)
    with pytest.raises(tokens.Refused, match="revoked"):
        tokens.check(table, f"Bearer {first}", at.timestamp())
    assert tokens.check(table, f"Bearer {second}", at.timestamp()).name == "b"


async def test_a_token_issued_by_another_process_can_be_revoked_at_once(aiohttp_client, settings):
    first = await aiohttp_client(app_mod.make_app(settings))
    second = await aiohttp_client(app_mod.make_app(settings))
    ci = await issue(first, "ci", "viewer")
    response = await second.delete("/v1/tokens/ci")  # before or after the second process has followed
    assert response.status == 200, await response.text()
    assert (await response.json())["state"] == "revoked"
    await asyncio.wait_for(_until(second, ci, 401), 1.0)
