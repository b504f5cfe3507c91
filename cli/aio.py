"""The aiohttp side of the CLI, for the commands that stream (``export`` pages, ``wait``'s live feed).

Plain requests stay on urllib (cli/http.py); a command that reads a long response while doing
something else, or follows Server-Sent Events, uses aiohttp, imported only when it runs. A
response is opened the way cli/http.py sends every request: a busy service (429, 502, 503, 504) is
waited for as its ``Retry-After`` asks within the retry budget, and any other error becomes the
same one-line :class:`http.ApiError` with the exit code its status means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cli import http

if TYPE_CHECKING:
    import aiohttp


async def open_get(session: aiohttp.ClientSession, url: str, accept: str, client: http.Client,
                   headers: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
    """The response once its headers say 200 (the caller reads and releases it)."""
    import aiohttp

    patience = http.Patience(client.budget, client.backoff)
    while True:
        try:
            resp = await session.get(url, headers={"Accept": accept, **(headers or {})})
        except aiohttp.ClientConnectionError as exc:
            raise http.ApiError(0, f"cannot reach the ledger at {client.base_url}: {exc}") from exc
        if resp.status == 200:
            return resp
        body = await resp.read()
        resp.release()
        message, problem = http.problem_message(resp.status, body)
        header = resp.headers.get("Retry-After")
        delay = patience.delay(header) if resp.status in http.RETRY_STATUSES else None
        if delay is None:
            if resp.status in http.RETRY_STATUSES:
                message += patience.gave_up(header)
            raise http.ApiError(resp.status, message, problem)
        await asyncio.sleep(delay)
