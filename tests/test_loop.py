"""The suite runs on the event loop ``ledger serve`` uses (uvloop), tests and fixtures alike."""

from __future__ import annotations

import asyncio

import pytest_asyncio
import uvloop


@pytest_asyncio.fixture
async def fixture_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def test_async_tests_and_fixtures_run_on_uvloop(fixture_loop):
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert fixture_loop is asyncio.get_running_loop()


async def test_the_app_fixture_runs_on_uvloop(client):
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert (await client.get("/healthz")).status == 200
