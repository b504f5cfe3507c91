"""Cluster access: credentials references resolved at apply time, one client per target with its
own discovery cache, recreated when the way to reach the target changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from emulator import Emulator
from handlers import clients, credentials, errors
from ledger import events
from ledger import settings as settings_mod
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


async def test_a_token_file_is_sent_as_bearer_token_and_reread_when_it_changes(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("first\n")
    cfg = await credentials.configuration(credentials.Access(server="https://k8s.example:6443",
                                                             credentials_ref=f"token-file:{token}"))
    assert cfg.host == "https://k8s.example:6443"
    assert await cfg.get_api_key_with_prefix("BearerToken") == "Bearer first"
    token.write_text("second\n")
    os.utime(token, (1, 1))  # a different mtime, as a rotation gives
    assert await cfg.get_api_key_with_prefix("BearerToken") == "Bearer second"


async def test_ca_bundle_and_insecure_are_honoured(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = await credentials.configuration(credentials.Access(server="https://a", ca_ref=str(ca)))
    assert cfg.ssl_ca_cert == str(ca) and cfg.verify_ssl
    cfg = await credentials.configuration(credentials.Access(server="https://a", ca_ref=str(ca), insecure=True))
    assert cfg.ssl_ca_cert is None and not cfg.verify_ssl
    cfg = await credentials.configuration(credentials.Access(server="https://a"))
    assert cfg.verify_ssl and cfg.ssl_ca_cert is None


@pytest.mark.parametrize(("access", "kind", "message"), [
    (credentials.Access(server="https://a", credentials_ref="vault:secret/x"), errors.PermanentError,
     "use token-file:<path> or kubeconfig:<path>"),
    (credentials.Access(server="https://a", credentials_ref="token-file:"), errors.PermanentError, "names no file"),
    (credentials.Access(), errors.PermanentError, "names no API server"),
    (credentials.Access(server="https://a", credentials_ref="token-file:/nonexistent/token"),
     errors.TemporaryError, "cannot read credentials"),
    (credentials.Access(server="https://a", ca_ref="/nonexistent/ca.pem"), errors.TemporaryError,
     "cannot read CA bundle"),
])
async def test_bad_references_say_what_is_wrong_and_whether_to_retry(access, kind, message):
    with pytest.raises(errors.ApplyError) as caught:
        await credentials.configuration(access)
    assert type(caught.value) is kind
    assert message in caught.value.message


async def test_a_kubeconfig_context_reaches_its_cluster(tmp_path: Path, emu: Emulator):  # noqa: F811
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(emu.kubeconfig()))
    pool = clients.Pool(tmp_path / "cache", timeout=3, user_agent="test")
    try:
        client = await pool.get("edge", credentials.Access(context="eu-2", credentials_ref=f"kubeconfig:{path}"))
        resource = await client.resource("v1", "ConfigMap")
        await client.apply(resource, configmap("x", namespace="default"), "default")
        assert emu.cluster("eu-2").get("v1", "ConfigMap", "default", "x") is not None
        assert emu.cluster("eu-1").get("v1", "ConfigMap", "default", "x") is None
        assert await credentials.configuration(credentials.Access(
            context="eu-2", credentials_ref=f"kubeconfig:{path}")) is not None
    finally:
        await pool.close()


async def test_each_target_has_its_own_client_and_discovery_cache_recreated_on_change(tmp_path: Path, emu: Emulator):  # noqa: F811
    pool = clients.Pool(tmp_path / "cache", timeout=3, user_agent="test")
    try:
        first = credentials.Access(server=emu.cluster_url("eu-1"))
        a = await pool.get("a", first)
        b = await pool.get("b", credentials.Access(server=emu.cluster_url("eu-2")))
        assert a is not b and a.cache_file != b.cache_file
        assert await pool.get("a", first) is a
        await a.resource("v1", "ConfigMap")
        await b.resource("v1", "ConfigMap")
        await a.flush()
        await b.flush()
        assert a.cache_file.exists() and b.cache_file.exists()
        moved = await pool.get("a", credentials.Access(server=emu.cluster_url("us-1")))
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
        client = await pool.get("a", credentials.Access(server=emu.cluster_url("eu-1")))
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

    async def test_targets_reached_through_kubeconfig_and_a_bad_reference_is_recorded(
            self, store, db, emu: Emulator, tmp_path: Path):  # noqa: F811
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(emu.kubeconfig()))
        await append(store, events.TargetRegistered(target="edge", labels={"region": "eu"}, context="us-1",
                                                    credentials_ref=f"kubeconfig:{path}"))
        await append(store, events.TargetRegistered(target="broken", labels={"region": "eu"},
                                                    server=emu.cluster_url("eu-1"), credentials_ref="vault:x"))
        await submit(store, "web", [configmap("a", namespace="default")], "region=eu")

        async def done():
            found = await outcomes(db, "web")
            return found if succeeded(found, 1, {"edge"}) and any(o["target"] == "broken" for o in found) else None

        found = await eventually(done)
        assert emu.cluster("us-1").get("v1", "ConfigMap", "default", "a") is not None
        broken = [o for o in found if o["target"] == "broken"]
        assert len(broken) == 1 and not broken[0]["retryable"] and "vault:x" in broken[0]["error"]
        # The log names the reference, never a secret.
        raw = await db.fetchval("SELECT data::text FROM events WHERE type = 'TargetRegistered' AND stream = 'target-edge'")
        assert "emulator" not in raw  # the kubeconfig's token stays in the file
