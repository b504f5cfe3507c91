"""Issuing tokens in tests: the suite's admin issues one, the test gets its Authorization header."""

from __future__ import annotations

from typing import Any


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def issue(client: Any, name: str, role: str = "deployer", **body: Any) -> dict[str, str]:
    resp = await client.post("/v1/tokens", json={"name": name, "role": role, **body})
    assert resp.status == 201, await resp.text()
    return bearer((await resp.json())["token"])
