"""kubernetes-asyncio without loading its generated typed API and models until something asks for them.

Why: any ``import kubernetes_asyncio.<module>`` first runs the package's ``__init__``, which imports
``kubernetes_asyncio.client``, whose ``__init__`` imports every generated API class and model (some
850 modules: about 50 MB of RSS and a second of start-up in every process that talks to clusters).
The applier uses none of them: it talks to clusters through ``DynamicClient`` (JSON in, JSON out)
over ``ApiClient``, ``Configuration`` and the REST client, with ``config.load_kube_config`` and
``ApiException``, all modules of their own that do not need the generated code.

How, without changing what the library does: before the library is first imported in a process,
``install`` registers ``kubernetes_asyncio.client`` and ``kubernetes_asyncio.client.models`` as
*deferred* packages: module objects made from the library's own import specs (same file, same
search path), so their submodules import exactly as usual. A deferred package runs its real
``__init__`` the first time a name is asked of it that it does not hold yet (``client.CoreV1Api``,
``models.V1Pod``, a typed response being deserialized): from then on it is the library's package,
with the same objects. The few names the library's own light modules import from the package
(``from kubernetes_asyncio.client import ApiClient, Configuration`` in ``config/`` and ``watch/``)
are taken from the submodule that defines them, the very object the full ``__init__`` binds, and a
submodule asked for by name (``from kubernetes_asyncio.client import rest``) is imported as usual.
A process that has already imported the library is left alone (nothing to save there).

handlers/__init__.py calls ``install`` so that it runs before any handler module imports the library;
tests/test_imports.py holds the applier's process to it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

PACKAGE: Final = "kubernetes_asyncio"
CLIENT: Final = f"{PACKAGE}.client"
MODELS: Final = f"{CLIENT}.models"

# Names that modules of the library import from ``kubernetes_asyncio.client``, by defining submodule.
CLIENT_NAMES: Final[Mapping[str, str]] = {
    "ApiClient": "api_client",
    "Configuration": "configuration",
    "ApiException": "exceptions",
    "ApiValueError": "exceptions",
    "ApiTypeError": "exceptions",
    "ApiKeyError": "exceptions",
    "OpenApiException": "exceptions",
}


def _deferred(name: str, directory: Path, light: Mapping[str, str]) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    loaded = False

    def __getattr__(attr: str) -> Any:
        nonlocal loaded
        if attr in light:
            found = getattr(importlib.import_module(f"{name}.{light[attr]}"), attr)
            setattr(module, attr, found)
            return found
        if (directory / f"{attr}.py").is_file() or (directory / attr / "__init__.py").is_file():
            return importlib.import_module(f"{name}.{attr}")  # a submodule, as ``from package import`` does
        if loaded or (attr.startswith("__") and attr != "__all__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        loaded = True
        loader.exec_module(module)  # the package's own __init__, in this module: now it is the package
        return getattr(module, attr)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def install() -> None:
    """Register the deferred packages, unless the library is imported already (or not installed)."""
    if PACKAGE in sys.modules or CLIENT in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return
    client_dir = Path(next(iter(spec.submodule_search_locations))) / "client"
    client = _deferred(CLIENT, client_dir, CLIENT_NAMES)
    models = _deferred(MODELS, client_dir / "models", {})
    vars(client)["models"] = models  # as the import system binds a loaded submodule to its package
    sys.modules[CLIENT] = client
    sys.modules[MODELS] = models
