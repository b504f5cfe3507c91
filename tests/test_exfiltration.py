"""Regression: a caller of the API cannot make the applier send a cluster's credential anywhere but
to that cluster (issue 11). Before named credentials, a target whose ``server`` was the caller's own
listener and whose ``credentials_ref`` was ``token-file:<any readable file>`` (or ``kubeconfig:``
with a ``server`` override) made the applier send that secret to the listener as a bearer token.

A loopback listener records every ``Authorization`` header it receives. It has a credential of its
own in the operator's file; whatever is registered (through the target API, the generic endpoint,
or straight into the log as an old version would have recorded it), it receives that one and no
other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from emulator import Emulator
from ledger import events
from ledger import settings as settings_mod
from tests import credfiles
from tests.applier_support import (
    append,
    configmap,
    emu,  # noqa: F401 - fixture
    eventually,
    outcomes,
    submit,
)
from tests.applier_support import fast as fast_settings

pytestmark = pytest.mark.timeout(90)

PRIVATE = "private-secret-of-the-host"
KUBE_SECRET = "kube-secret-of-eu-2"


@pytest.fixture
def settings(settings: settings_mod.Settings) -> settings_mod.Settings:
    return fast_settings(settings)


class Listener:
    """An HTTP server on loopback that answers 403 to everything and remembers who said what."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return web.json_response({"kind": "Status", "status": "Failure", "code": 403, "message": "no"}, status=403)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()
    await found.start()
    try:
        yield found
    finally:
        await found.stop()


def _operator_file(tmp_path: Path, emu: Emulator, listener: Listener) -> tuple[Path, Path]:  # noqa: F811
    """The operator's file: the emulated clusters, a kubeconfig credential whose file also holds a
    context pointing at the listener, and the listener's own credential. Returns (private file,
    kubeconfig)."""
    private = tmp_path / "private.token"
    private.write_text(PRIVATE + "\n")
    kubeconfig = emu.kubeconfig()
    kubeconfig["users"] = [{"name": "emulator", "user": {"token": KUBE_SECRET}}]
    kubeconfig["clusters"].append({"name": "evil", "cluster": {"server": listener.url}})
    kubeconfig["contexts"].append({"name": "evil", "context": {"cluster": "evil", "user": "emulator"}})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    credfiles.add(tmp_path, kc={"kubeconfig": str(path), "context": "eu-2"},
                  trap=credfiles.token_entry(tmp_path, "trap", listener.url))
    return private, path


def _attacks(listener: Listener, private: Path, kubeconfig: Path) -> list[dict[str, Any]]:
    return [
        {"credentials": "eu-1", "server": listener.url},
        {"credentials": "kc", "server": listener.url},
        {"credentials": "kc", "server": listener.url + "/"},
        {"credentials_ref": f"token-file:{private}", "server": listener.url},
        {"credentials_ref": f"kubeconfig:{kubeconfig}", "context": "evil", "server": listener.url},
        {"credentials_ref": f"kubeconfig:{kubeconfig}", "server": listener.url},
        {"credentials": f"token-file:{private}"},
        {"credentials": "kc", "context": "evil"},
        {"credentials": "trap", "credentials_ref": f"token-file:{private}"},
        {"credentials": "trap", "ca_ref": str(private)},
        {"server": listener.url},
    ]


async def test_a_listener_receives_no_credential_but_its_own_whatever_is_registered(
        client, store, db, emu: Emulator, listener: Listener, tmp_path: Path):  # noqa: F811
    private, kubeconfig = _operator_file(tmp_path, emu, listener)
    attacks = _attacks(listener, private, kubeconfig)
    in_log: set[str] = set()
    for n, access in enumerate(attacks):
        labels = {"attack": "yes"}
        refused = await client.put(f"/v1/targets/p{n}", json={"labels": labels, **access})
        assert refused.status == 422, (access, await refused.text())
        generic = await client.post(f"/v1/streams/target-g{n}/events", json={"events": [
            {"type": "TargetRegistered", "data": {"target": f"g{n}", "labels": labels, **access}}]})
        if generic.status == 201:
            in_log.add(f"g{n}")
        # What a log written by an earlier version, or any other way in, may hold.
        await append(store, events.TargetRegistered(target=f"a{n}", labels=labels, **access))
        in_log.add(f"a{n}")
    own = await client.put("/v1/targets/own", json={"labels": {"attack": "yes"}, "credentials": "trap"})
    assert own.status == 201, await own.text()
    in_log.add("own")
    await submit(store, "loot", [configmap("x", namespace="default")], "attack=yes")

    async def every_target_tried():
        found = {o["target"] for o in await outcomes(db, "loot")}
        return in_log <= found

    await eventually(every_target_tried, timeout=60, what="an outcome for every target in the log")
    assert listener.authorizations, "the listener was never contacted: the test proves nothing"
    assert set(listener.authorizations) == {f"Bearer {credfiles.token('trap')}"}
    failed = {o["target"]: o for o in await outcomes(db, "loot")}
    assert all(not failed[t]["retryable"] for t in in_log)
    stored = await db.fetchval("SELECT string_agg(data::text || metadata::text, '') FROM events")
    for secret in (PRIVATE, KUBE_SECRET, credfiles.token("eu-1"), credfiles.token("trap")):
        assert secret not in stored
