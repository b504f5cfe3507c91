"""Property-based fuzzing of the live API with Schemathesis, generated from /openapi.json.

The service runs as ``ledger serve`` on 127.0.0.1 against the suite's real PostgreSQL, with the
projector on and the applier off; its credentials file names one anonymous credential on a closed
loopback port, so no generated value can make it connect anywhere. Each operation of the document
gets ``LEDGER_FUZZ_EXAMPLES`` examples (40 by default) with the admin token, each response checked
for: no 5xx, a documented status, a documented content type, a body that fits the documented
schema. Then every operation that needs a token is called without one and must answer 401.

The seed is printed with every failure (and at the start of the run); replay with
``LEDGER_FUZZ_SEED=<seed> .venv/bin/pytest tests/test_fuzz.py -k <operation id>`` (docs/api.md).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st

from api import app as app_mod
from api import openapi, problems
from ledger import settings as settings_mod
from tests import credfiles, pgfixtures, servers
from tests.projected import manifests

SEED = int(os.environ.get("LEDGER_FUZZ_SEED", "20261129"))
EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "40"))
UNAUTHENTICATED_EXAMPLES = 8
TIMEOUT = 30.0
# The one operation whose 200 never ends: its status and content type are checked, then it is dropped.
ENDLESS = {("GET", "/v1/feed/live")}
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]


def _static_document() -> dict[str, Any]:
    """The document as the app builds it, for collection (the live one is fetched by the tests)."""
    settings = settings_mod.Settings(database_url="postgresql://127.0.0.1:1/unused",
                                     data_dir=pathlib.Path(tempfile.gettempdir()), admin_token="x" * 32)
    return openapi.build(app_mod.make_app(settings))


DOCUMENT = _static_document()
OPERATIONS = [(method.upper(), path, op) for path, item in DOCUMENT["paths"].items() for method, op in item.items()]
SECURED = [(m, p, op) for m, p, op in OPERATIONS if op["security"]]
_CONSTRAINTS = {"minimum", "maximum", "pattern", "enum", "minLength", "maxLength", "anyOf"}


def _negatable(op: dict[str, Any]) -> bool:
    """Whether invalid input can be generated: a body or a constrained parameter."""
    return "requestBody" in op or any(_CONSTRAINTS & set(p["schema"]) for p in op["parameters"])


RUNS = [(m, p, op, mode) for m, p, op in OPERATIONS for mode in schemathesis.GenerationMode
        if mode is schemathesis.GenerationMode.POSITIVE or _negatable(op)]


@dataclass
class Live:
    url: str
    schema: Any
    examples: dict[str, int]


@pytest.fixture(scope="module")
def live(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    print(f"\nfuzz seed {SEED} ({EXAMPLES} examples per operation); replay with LEDGER_FUZZ_SEED={SEED}")
    loop = asyncio.new_event_loop()
    database = pgfixtures.fresh_database(pg_admin_url)
    url = loop.run_until_complete(database.__aenter__())
    directory = tmp_path_factory.mktemp("fuzz")
    credentials = credfiles.write(directory, {"local": {"server": "https://127.0.0.1:9", "anonymous": True}})
    service = servers.ServiceProcess(url, directory / "data", LEDGER_APPLIER="false",
                                     LEDGER_READ_WAIT_TIMEOUT="2", LEDGER_WAIT_TIMEOUT_MAX="1",
                                     LEDGER_CREDENTIALS=str(credentials))
    try:
        loop.run_until_complete(service.start())
        _seed(service.url)
        schema = schemathesis.openapi.from_url(service.url + "/openapi.json", headers=servers.ADMIN_HEADERS)
        found = Live(service.url, schema, {})
        yield found
        print(f"\nfuzz seed {SEED}: {len(OPERATIONS)} operations, {len(found.examples)} runs, "
              f"{sum(found.examples.values())} examples with the admin token")
    finally:
        service.stop()
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()


def _seed(url: str) -> None:
    """A target, a deployment with two revisions and a token, so reads also find something."""
    with requests.Session() as session:
        session.headers.update(servers.ADMIN_HEADERS)
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("PUT", "/v1/targets/eu-1", {"labels": {"region": "eu"}, "credentials": "local"}),
            ("POST", "/v1/deployments/web/revisions", {"manifests": manifests("1"), "selector": "region=eu"}),
            ("POST", "/v1/deployments/web/revisions", {"manifests": manifests("2")}),
            ("POST", "/v1/tokens", {"name": "viewer", "role": "viewer"}),
        ]
        for method, path, body in calls:
            response = session.request(method, url + path, json=body, timeout=TIMEOUT)
            assert response.status_code in (200, 201), response.text


def _send(live: Live, case: schemathesis.Case, headers: dict[str, str]) -> requests.Response:
    """The request as Schemathesis would send it, with the body left unread (streams never end)."""
    kwargs = case.as_transport_kwargs(base_url=live.url, headers=headers)
    return requests.request(**kwargs, timeout=TIMEOUT, stream=True)


def _call(live: Live, case: schemathesis.Case, headers: dict[str, str]) -> None:
    if (case.method.upper(), case.path) not in ENDLESS:
        case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS, timeout=TIMEOUT)
        return
    with _send(live, case, headers) as response:
        if response.status_code == 200:
            assert response.headers["Content-Type"].startswith("text/event-stream"), response.headers
        else:
            response.content  # noqa: B018 - an error is a short body: read it to validate it
            case.validate_response(response, checks=CHECKS, headers=headers)


def _run(strategy: st.SearchStrategy[schemathesis.Case], examples: int,
         test: Any) -> None:
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink])
    @hypothesis.seed(SEED)
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        test(case)

    run()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("method", "path", "mode"), [(m, p, mode) for m, p, _, mode in RUNS],
                         ids=[f"{op['operationId']}-{mode.value}" for _, _, op, mode in RUNS])
def test_with_an_admin_token_every_response_is_documented_and_none_is_a_server_error(
        live: Live, method: str, path: str, mode: schemathesis.GenerationMode) -> None:
    operation = live.schema[path][method]
    count = 0

    def one(case: schemathesis.Case) -> None:
        nonlocal count
        count += 1
        _call(live, case, servers.ADMIN_HEADERS)

    try:
        _run(operation.as_strategy(generation_mode=mode), EXAMPLES, one)
    except BaseException:
        print(f"fuzz seed {SEED}: replay with LEDGER_FUZZ_SEED={SEED}")
        raise
    assert count >= 1, f"{method} {path}: no example ran"
    live.examples[f"{method} {path} {mode.value}"] = count


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in SECURED],
                         ids=[op["operationId"] for _, _, op in SECURED])
def test_without_a_token_every_secured_operation_answers_401(live: Live, method: str, path: str) -> None:
    operation = live.schema[path][method]

    def one(case: schemathesis.Case) -> None:
        with _send(live, case, {}) as response:
            assert response.status_code == 401, (method, path, response.status_code, response.text[:500])
            assert response.headers["Content-Type"].startswith(problems.CONTENT_TYPE)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            case.validate_response(response, checks=CHECKS)

    _run(operation.as_strategy(), UNAUTHENTICATED_EXAMPLES, one)


def test_the_public_operations_are_the_probes_and_the_reference_page() -> None:
    public = sorted(f"{m} {p}" for m, p, op in OPERATIONS if not op["security"])
    assert public == ["GET /api", "GET /api/assets/{asset}", "GET /healthz", "GET /readyz"]
