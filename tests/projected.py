"""Fixtures and helpers for tests that need the projector: an app with it enabled, and writes that
return the position to read at."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api import app as app_mod
from api import keys
from ledger import settings as settings_mod
from tests import credfiles

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: apps\ndata:\n  k: '{}'\n"


@pytest.fixture(name="live")
async def live_client(aiohttp_client, settings: settings_mod.Settings) -> TestClient:  # type: ignore[no-untyped-def]
    """A client of an app that runs the projector."""
    return await aiohttp_client(app_mod.make_app(settings.replace(projector=True, read_wait_timeout=20.0)))


def manifests(value: str = "1", name: str = "web") -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"},
             "data": {"k": value}}]


async def register(client: TestClient, name: str, **labels: str) -> dict[str, Any]:
    credfiles.add_anonymous(client.app[keys.SETTINGS], name)
    response = await client.put(f"/v1/targets/{name}", json={"labels": labels, "credentials": name})
    assert response.status in (200, 201), await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def submit(client: TestClient, name: str, selector: str | None = "", value: str = "1",
                 **extra: Any) -> dict[str, Any]:
    """A revision of a ConfigMap named like the deployment: two deployments never share an object."""
    payload: dict[str, Any] = {"manifests": manifests(value, name), **extra}
    if selector is not None:
        payload["selector"] = selector
    response = await client.post(f"/v1/deployments/{name}/revisions", json=payload)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def read(client: TestClient, path: str, position: int) -> Any:
    """GET ``path`` once the read models have reached ``position``."""
    sep = "&" if "?" in path else "?"
    response = await client.get(f"{path}{sep}min_position={position}")
    assert response.status == 200, await response.text()
    return await response.json()
