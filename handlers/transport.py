"""The HTTP side of a target's API client, made cheap enough for a fleet of a thousand.

Three costs of kubernetes-asyncio 36.1.0 dominate a fan-out to many clusters, and are removed here
without changing what goes over the wire:

- **SSL contexts.** Every ApiClient builds ``ssl.create_default_context()``; loading the system CA
  store takes ~30 ms, half a minute of CPU for a thousand clusters before the first request. An
  SSLContext is safe to share, so clients with equal TLS settings (CA bundle, verification,
  client certificate) share one, made once with exactly the library's own rules.
- **netrc per request.** The library's aiohttp session has ``trust_env=True``, so aiohttp looks up
  ``~/.netrc`` in a worker thread on *every* request. We trust the environment only when a proxy
  variable (``HTTPS_PROXY`` and friends) is actually set, which is what the library needs it for.
- **Discovery cache writes.** The LazyDiscoverer rewrites its whole cache file with the
  pure-Python JSON encoder after every discovery step (three times for a new cluster), blocking the
  event loop. Ours marks the cache dirty; the client writes it once per pass, encoded with msgspec,
  in a worker thread, atomically (temporary file and rename, so a reader never sees half a file).
  The format is the library's own.

``RestClient`` and ``ApiClient`` only replace the constructors of the library's
``RESTClientObject`` and ``ApiClient`` (same attributes); the version is pinned in
pyproject.toml, and tests/test_clients.py exercises them over real HTTP.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from typing import Any, Final

import aiohttp
import msgspec
from kubernetes_asyncio import client as kube_client
from kubernetes_asyncio.client import rest
from kubernetes_asyncio.dynamic import discovery

_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
USER_AGENT: Final = "ledger-applier"
_PROXY_VARIABLES: Final = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def ssl_context(cfg: kube_client.Configuration) -> ssl.SSLContext:
    """The context RESTClientObject would build for ``cfg``, made once per distinct TLS setting."""
    key = (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file, bool(cfg.verify_ssl),
           bool(cfg.disable_strict_ssl_verification))
    found = _contexts.get(key)
    if found is None:
        found = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.cert_file:
            found.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
        if not cfg.verify_ssl:
            found.check_hostname = False
            found.verify_mode = ssl.CERT_NONE
        if cfg.disable_strict_ssl_verification:
            found.verify_flags &= ~ssl.VERIFY_X509_STRICT
        _contexts[key] = found
    return found


class RestClient(rest.RESTClientObject):
    def __init__(self, cfg: kube_client.Configuration) -> None:
        # The library annotates these as non-optional; its own constructor assigns None as well.
        self.server_hostname = cfg.tls_server_name  # type: ignore[assignment]
        self.proxy = cfg.proxy  # type: ignore[assignment]
        self.proxy_headers = cfg.proxy_headers  # type: ignore[assignment]
        connector = aiohttp.TCPConnector(limit=cfg.connection_pool_maxsize, ssl=ssl_context(cfg))
        trust_env = any(os.environ.get(name) for name in _PROXY_VARIABLES)
        self.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=trust_env, read_bufsize=2**21)


class ApiClient(kube_client.ApiClient):
    def __init__(self, cfg: kube_client.Configuration, user_agent: str = USER_AGENT) -> None:
        self.configuration = cfg
        self.pool_threads = 1
        self.rest_client = RestClient(cfg)
        self.default_headers: dict[str, str] = {}
        self.cookie = None  # type: ignore[assignment]
        self.user_agent = user_agent
        self.client_side_validation = cfg.client_side_validation


def _to_dict(obj: Any) -> Any:
    return obj.to_dict()


class Discoverer(discovery.LazyDiscoverer):
    """The library's lazy discovery, writing its cache file once per ``flush()``."""

    def __init__(self, client: Any, cache_file: str) -> None:
        self._path = cache_file
        self._dirty = False
        super().__init__(client, cache_file)  # type: ignore[no-untyped-call]

    def _write_cache(self) -> None:
        self._dirty = True

    def pending(self) -> tuple[str, bytes] | None:
        """The cache file's path and new content if discovery learnt something since last time."""
        if not self._dirty:
            return None
        self._dirty = False
        return self._path, msgspec.json.encode(self._cache, enc_hook=_to_dict)

    def flush(self) -> None:
        found = self.pending()
        if found is not None:
            write(*found)


def write(path: str, data: bytes) -> None:
    """Replace ``path`` atomically (temporary file and rename: a reader never sees half a file)."""
    with contextlib.suppress(OSError):  # a cache: failing to write it only costs a rediscovery
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
