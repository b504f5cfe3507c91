"""Regression tests for what the fuzzer (tests/test_fuzz.py) found, each with the input it sent."""

from __future__ import annotations

import pytest

from tests.projected import submit


@pytest.mark.parametrize("path", [
    "/v1/feed?until=151295607093770931783491006331092992",
    "/v1/verify?from=1719192483833720815525260427264",
    "/v1/events?after=9223372036854775808",
    "/v1/streams/deployment-web?from_version=2147483648",
    "/v1/deployments/web/revisions?from_revision=2147483648",
    "/v1/deployments/web/revisions/2337567524626",
])
async def test_an_integer_beyond_what_its_column_holds_is_422_naming_it(client, path):
    await submit(client, "web", "")
    response = await client.get(path)
    assert response.status == 422, await response.text()
    body = await response.json(content_type=None)
    name = path.split("?")[1].split("=")[0] if "?" in path else "number"
    assert body["field"] == name


@pytest.mark.parametrize("path", ["/v1/targets?min_position=43168880152722",
                                  "/v1/deployments/web?min_position=4877"])
async def test_min_position_beyond_the_head_is_422_at_once_not_a_504_after_waiting(client, path):
    response = await client.get(path)
    assert response.status == 422, await response.text()
    assert (await response.json(content_type=None))["field"] == "min_position"
