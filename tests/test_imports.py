"""Each process of a multi-process ``ledger serve`` loads only what it runs (issue 16: the service's
memory, summed over its four interpreters, is bounded; a library loaded for nothing is paid in
every process that loads it).

Each check runs in a fresh interpreter that takes the process's own path: the supervisor's
modules as ``ledger serve`` imports them, and each role's application as ``cli/roles.py`` builds
it (plus, for the applier, the applier module its start-up imports). What may not be loaded:

- the supervisor: aiohttp, the database driver, the web UI's templates, the Kubernetes client;
- the projector: the web UI's templates, the Kubernetes client;
- the applier: the web UI's templates, and of the Kubernetes client the generated typed API and
  models (it uses the dynamic client; handlers/kube.py);
- the API: the Kubernetes client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import servers

TEMPLATES = ("jinja2", "aiohttp_jinja2")
KUBERNETES = ("kubernetes_asyncio",)
GENERATED = ("kubernetes_asyncio.client.api.", "kubernetes_asyncio.client.models.")
# Registered, not run, in every process that imports handlers/ (handlers/kube.py): they hold nothing
# until asked, and anything they load is a module of its own below them.
DEFERRED = {"kubernetes_asyncio.client", "kubernetes_asyncio.client.models"}

ROLE = """
import json, sys
from cli import roles
from cli import spec as spec_mod
from ledger import settings as settings_mod

settings = settings_mod.load({{}}, {{"database_url": "postgresql://ledger@127.0.0.1:9/ledger",
                                   "admin_token": "t" * 40}})
spec = spec_mod.Spec({role!r}, {{}}, -1, "secret", peers={{}})
roles.prepare(spec, settings)
if {role!r} == "applier":
    from handlers import applier  # what the applier's start-up imports (api/lifecycle.py)
print(json.dumps(sorted(sys.modules)))
"""

SUPERVISOR = """
import json, sys
from cli import main, serve, status, supervisor
print(json.dumps(sorted(sys.modules)))
"""


def run(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", script], cwd=servers.ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(servers.ROOT)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded(script: str) -> list[str]:
    return list(json.loads(run(script)))


def under(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if (m in prefixes or m.startswith(tuple(f"{p}." for p in prefixes)))
            and m not in DEFERRED]


def test_the_supervisor_loads_no_http_framework_driver_templates_or_kubernetes_client():
    modules = loaded(SUPERVISOR)
    assert under(modules, ("aiohttp", "asyncpg", *TEMPLATES, *KUBERNETES)) == []
    assert "cli.supervisor" in modules


@pytest.mark.parametrize(("role", "forbidden"), [
    ("api", KUBERNETES),
    ("projector", (*TEMPLATES, *KUBERNETES)),
    ("applier", TEMPLATES),
])
def test_each_role_loads_only_what_it_runs(role: str, forbidden: tuple[str, ...]):
    modules = loaded(ROLE.format(role=role))
    assert under(modules, forbidden) == []
    assert "aiohttp" in modules  # it did build its application


def test_the_applier_uses_the_kubernetes_client_without_its_generated_api_and_models():
    modules = loaded(ROLE.format(role="applier"))
    assert "kubernetes_asyncio.dynamic.client" in modules
    assert [m for m in modules if m.startswith(GENERATED)] == []


def test_the_deferred_kubernetes_client_is_the_library_s_own_once_asked():
    found = json.loads(run("""
import json
from handlers import clients, transport
from kubernetes_asyncio import client
from kubernetes_asyncio.client import api_client, configuration, rest
light = [client.ApiClient is api_client.ApiClient, client.Configuration is configuration.Configuration,
         client.rest is rest]
pod = client.V1Pod(metadata=client.V1ObjectMeta(name="web"))
print(json.dumps({"light": light, "pod": pod.to_dict()["metadata"]["name"],
                  "typed": client.CoreV1Api.__module__, "models": client.models.V1Pod is client.V1Pod,
                  "subclass": issubclass(transport.ApiClient, client.ApiClient)}))
"""))
    assert found == {"light": [True, True, True], "pod": "web", "typed": "kubernetes_asyncio.client.api.core_v1_api",
                     "models": True, "subclass": True}
