"""The CLI's retries against a real HTTP server on loopback that answers 503 or 429: the waits are
what the server's ``Retry-After`` asks, bounded in total, and a write is retried with the same
``Idempotency-Key``. The client's pause is handed a recorder instead of sleeping, so the test
checks the waits asked for without measuring time."""

from __future__ import annotations

import asyncio
import datetime
import email.utils

import pytest
from aiohttp import web

from cli import exits, http

BUSY = {"type": "about:blank", "title": "Service unavailable", "status": 503, "detail": "database unavailable"}


def busy_server(statuses: list[tuple[int, str | None]], seen: list[dict[str, str]]) -> web.Application:
    """Answers each request with the next (status, Retry-After) until they run out, then 200."""

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if statuses:
            status, after = statuses.pop(0)
            headers = {"Retry-After": after} if after is not None else {}
            return web.json_response({**BUSY, "status": status}, status=status, headers=headers,
                                     content_type="application/problem+json")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def call(server, method: str = "GET", budget: float = http.RETRY_BUDGET) -> tuple[list[float], object]:
    waits: list[float] = []
    client = http.Client(str(server.make_url("")).rstrip("/"), pause=waits.append, budget=budget)
    try:
        result: object = await asyncio.to_thread(client.request, method, "/v1/anything",
                                                 json_body={} if method == "POST" else None)
    except http.ApiError as exc:
        result = exc
    return waits, result


async def test_a_503_is_retried_after_what_retry_after_asks(aiohttp_server):
    seen: list[dict[str, str]] = []
    server = await aiohttp_server(busy_server([(503, "2"), (503, "3")], seen))
    waits, result = await call(server)
    assert waits == [2.0, 3.0] and isinstance(result, http.Response) and result.json() == {"ok": True}


async def test_a_429_with_an_http_date_is_waited_for(aiohttp_server):
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=20)
    server = await aiohttp_server(busy_server([(429, email.utils.format_datetime(later, usegmt=True))], []))
    waits, result = await call(server)
    assert len(waits) == 1 and 15 <= waits[0] <= 20 and isinstance(result, http.Response)


async def test_a_write_is_retried_with_the_same_idempotency_key(aiohttp_server):
    seen: list[dict[str, str]] = []
    server = await aiohttp_server(busy_server([(503, "1"), (502, None)], seen))
    waits, result = await call(server, "POST")
    assert isinstance(result, http.Response) and waits == [1.0, 1.0]
    assert len({s["Idempotency-Key"] for s in seen}) == 1 and len(seen) == 3


async def test_a_retry_after_beyond_the_budget_is_not_waited_for(aiohttp_server):
    server = await aiohttp_server(busy_server([(503, "1"), (503, "600")], []))
    waits, result = await call(server)
    assert waits == [1.0]
    assert isinstance(result, http.ApiError) and result.code == exits.Code.UNREACHABLE
    assert "it asks to retry after 600 s" in result.message and "database unavailable" in result.message


async def test_the_total_wait_is_bounded(aiohttp_server):
    server = await aiohttp_server(busy_server([(503, "4")] * 50, []))
    waits, result = await call(server, budget=10)
    assert waits == [4.0, 4.0] and isinstance(result, http.ApiError) and result.status == 503
    server = await aiohttp_server(busy_server([(503, "0")] * 50, []))
    waits, result = await call(server)
    assert len(waits) == http.MAX_RETRIES and isinstance(result, http.ApiError)


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), (" 0 ", 0.0), ("soon", None), (None, None), ("", None),
                                                ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_values(value, seconds):
    assert http.retry_after(value) == seconds
