"""Cluster access: a client made from the operator's credential alone, one per target with its own
discovery cache, recreated when the credential changes; targets the catalogue does not allow fail
permanently without contacting anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from emulator import Emulator
from handlers import clients, credentials, errors
from ledger import access as access_mod
from ledger import credentials as creds
from ledger import credfile, events
from ledger import settings as settings_mod
from projections import fleet
from tests import credfiles
from tests.applier_support import (
    append,
    client,  # noqa: F401 - fixture
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    outcomes,
    submit,
    succeeded,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(60)


def _entry(name: str = "a", server: str = "https://k8s.example:6443", **fields) -> creds.Credential:
    return creds.Credential(name=name, server=server, **fields)


async def test_a_token_file_is_sent_as_bearer_token_and_reread_when_it_changes(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("first\n")
    cfg = await credentials.configuration(_entry(token_file=token))
    assert cfg.host == "https://k8s.example:6443"
    assert await cfg.get_api_key_with_prefix("BearerToken") == "Bearer first"
    token.write_text("second\n")
    os.utime(token, (1, 1))  # a different mtime, as a rotation gives
    assert await cfg.get_api_key_with_prefix("BearerToken") == "Bearer second"


async def test_ca_bundle_and_insecure_are_honoured(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = await credentials.configuration(_entry(ca_file=ca))
    assert cfg.ssl_ca_cert == str(ca) and cfg.verify_ssl
    cfg = await credentials.configuration(_entry(ca_file=ca, insecure=True))
    assert cfg.ssl_ca_cert is None and not cfg.verify_ssl
    cfg = await credentials.configuration(_entry())
    assert cfg.verify_ssl and cfg.ssl_ca_cert is None
    assert "BearerToken" not in cfg.api_key  # anonymous: nothing is sent


@pytest.mark.parametrize(("entry", "message"), [
    (_entry(token_file=Path("/nonexistent/token")), "cannot read the token file of credential a"),
    (_entry(ca_file=Path("/nonexistent/ca.pem")), "cannot read the CA bundle of credential a"),
])
async def test_unreadable_files_are_temporary_and_named_by_their_credential(entry, message):
    with pytest.raises(errors.TemporaryError) as caught:
        await credentials.configuration(entry)
    assert message in caught.value.message and "/nonexistent" not in caught.value.message


@pytest.mark.parametrize(("access", "message"), [
    (access_mod.Access(credentials_ref="token-file:/etc/hostname"), "credentials_ref: is no longer accepted"),
    (access_mod.Access(credentials="a", ca_ref="/etc/ssl/x.pem"), "ca_ref: is no longer accepted"),
    (access_mod.Access(server="https://k8s.example:6443"), "a target must name a credential"),
    (access_mod.Access(credentials="gone"), "no credential named 'gone'"),
    (access_mod.Access(credentials="a", server="https://elsewhere:6443"), "is not the API server of credential"),
])
def test_a_target_the_catalogue_does_not_allow_fails_permanently_saying_what_to_do(access, message):
    target = fleet.Target(name="t", access=access)
    with pytest.raises(errors.PermanentError) as caught:
        credentials.credential_for(target, {"a": _entry()})
    assert message in caught.value.message and "credentials: NAME" in caught.value.message


async def test_a_kubeconfig_context_reaches_its_cluster(tmp_path: Path, emu: Emulator):  # noqa: F811
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(emu.kubeconfig()))
    file = credfiles.write(tmp_path / "etc", {"edge": {"kubeconfig": str(path), "context": "eu-2"}})
    catalogue, _ = credfile.load(file, required=True)
    assert catalogue["edge"].server == emu.cluster_url("eu-2")
    pool = clients.Pool(tmp_path / "cache", timeout=3, user_agent="test")
    try:
        client = await pool.get("edge", catalogue["edge"])
        resource = await client.resource("v1", "ConfigMap")
        await client.apply(resource, configmap("x", namespace="default"), "default")
        assert emu.cluster("eu-2").get("v1", "ConfigMap", "default", "x") is not None
        assert emu.cluster("eu-1").get("v1", "ConfigMap", "default", "x") is None
    finally:
        await pool.close()


async def test_a_kubeconfig_that_now_reaches_another_server_waits_for_the_reload(tmp_path: Path, emu: Emulator):  # noqa: F811
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(emu.kubeconfig()))
    file = credfiles.write(tmp_path / "etc", {"edge": {"kubeconfig": str(path), "context": "eu-2"}})
    catalogue, _ = credfile.load(file, required=True)
    moved = emu.kubeconfig()
    moved["clusters"] = [{"name": c["name"], "cluster": {"server": "https://127.0.0.2:1"}} for c in moved["clusters"]]
    path.write_text(yaml.safe_dump(moved))
    with pytest.raises(errors.TemporaryError, match="waiting for the reload"):
        await credentials.configuration(catalogue["edge"])
    path.write_text("- not a mapping\n")
    with pytest.raises(errors.TemporaryError, match="cannot be used now"):
        await credentials.configuration(catalogue["edge"])


async def test_each_target_has_its_own_client_and_discovery_cache_recreated_on_change(tmp_path: Path, emu: Emulator):  # noqa: F811
    pool = clients.Pool(tmp_path / "cache", timeout=3, user_agent="test")
    try:
        first = _entry("eu-1", emu.cluster_url("eu-1"))
        a = await pool.get("a", first)
        b = await pool.get("b", _entry("eu-2", emu.cluster_url("eu-2")))
        assert a is not b and a.cache_file != b.cache_file
        assert await pool.get("a", first) is a
        await a.resource("v1", "ConfigMap")
        await b.resource("v1", "ConfigMap")
        await a.flush()
        await b.flush()
        assert a.cache_file.exists() and b.cache_file.exists()
        moved = await pool.get("a", _entry("eu-1", emu.cluster_url("us-1")))
        assert moved is not a and not a.cache_file.exists()
        await moved.apply(await moved.resource("v1", "ConfigMap"), configmap("y", namespace="default"), "default")
        assert emu.cluster("us-1").get("v1", "ConfigMap", "default", "y") is not None
        await pool.drop("b")
        assert not b.cache_file.exists() and "b" not in pool
    finally:
        await pool.close()


async def test_http_errors_come_back_as_translated_errors_not_status_objects(tmp_path: Path, emu: Emulator):  # noqa: F811
    pool = clients.Pool(tmp_path / "cache", timeout=3, user_agent="test")
    try:
        client = await pool.get("a", _entry("eu-1", emu.cluster_url("eu-1")))
        resource = await client.resource("v1", "ConfigMap")
        with pytest.raises(errors.PermanentError) as caught:
            await client.apply(resource, configmap("x", namespace="missing"), "missing")
        assert caught.value.status == 404 and caught.value.message == 'namespaces "missing" not found'
        assert await client.delete(resource, "nothing-here", "default") is False
    finally:
        await pool.close()


class TestEndToEnd:
    @pytest.fixture
    def settings(self, settings: settings_mod.Settings) -> settings_mod.Settings:
        return fast_settings(settings)

    async def test_targets_reached_through_a_kubeconfig_credential_and_a_legacy_reference_is_refused(
            self, store, db, emu: Emulator, tmp_path: Path):  # noqa: F811
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(emu.kubeconfig()))
        credfiles.add(tmp_path, edge={"kubeconfig": str(path), "context": "us-1"})
        await append(store, events.TargetRegistered(target="edge", labels={"region": "eu"}, credentials="edge"))
        # As an event recorded before named credentials says it: the applier never reads the path.
        await append(store, events.TargetRegistered(target="legacy", labels={"region": "eu"},
                                                    server=emu.cluster_url("eu-1"),
                                                    credentials_ref=f"kubeconfig:{path}"))
        await submit(store, "web", [configmap("a", namespace="default")], "region=eu")

        async def done():
            found = await outcomes(db, "web")
            return found if succeeded(found, 1, {"edge"}) and any(o["target"] == "legacy" for o in found) else None

        found = await eventually(done)
        assert emu.cluster("us-1").get("v1", "ConfigMap", "default", "a") is not None
        legacy = [o for o in found if o["target"] == "legacy"]
        assert len(legacy) == 1 and not legacy[0]["retryable"]
        assert "credentials_ref: is no longer accepted" in legacy[0]["error"]
        assert "credentials: NAME" in legacy[0]["error"] and str(path) not in legacy[0]["error"]
        assert not [r for r in emu.cluster("eu-1").requests]  # nothing was sent where the old event points
        # The log names the credential, never a secret.
        raw = await db.fetchval("SELECT data::text FROM events WHERE type = 'TargetRegistered' AND stream = 'target-edge'")
        assert "emulator" not in raw and str(path) not in raw

    async def test_a_credential_added_to_the_file_later_is_used_without_a_restart(
            self, store, db, emu: Emulator, tmp_path: Path):  # noqa: F811
        await append(store, events.TargetRegistered(target="late", labels={"region": "eu"}, credentials="late"))
        await submit(store, "web", [configmap("a", namespace="default")], "region=eu")
        failed = await eventually(lambda: outcomes(db, "web"))
        assert not failed[0]["retryable"] and "no credential named 'late'" in failed[0]["error"]
        credfiles.add(tmp_path, late=credfiles.token_entry(tmp_path, "late", emu.cluster_url("us-1")))
        found = await eventually(lambda: _succeeded(db, "late"), what="applied once the credential exists")
        assert found[-1]["attempt"] == 2
        assert emu.cluster("us-1").get("v1", "ConfigMap", "default", "a") is not None


async def _succeeded(db, target):
    found = await outcomes(db, "web")
    return found if succeeded(found, 1, {target}) else None
