"""One API client per target, and the calls the applier makes through it.

Decisions:

- **One client per target**, made on first use and kept: an ``ApiClient`` (its own aiohttp session
  and keep-alive connections) with a ``DynamicClient`` whose discovery is cached in a file of the
  target's own under the data directory, named after the target and a hash of how it is reached.
  The client is made from the operator's credential alone (handlers.credentials). When the target
  names another credential, or the credentials file changes that credential, the old client is
  closed, its cache file deleted and a new one made; a retired target's client is closed.
- **Every call is bounded** by ``apply_timeout`` (``asyncio.timeout`` around the request *and* the
  body read; discovery included, which kubernetes-asyncio would otherwise let hang forever).
- **Errors are translated here** (handlers.errors). kubernetes-asyncio 36.1.0's DynamicClient does
  not raise on HTTP errors: it hands back the ``Status`` body as if it were an object. We ask for
  the raw response (``serialize=False``) so the HTTP status and the Retry-After header are ours to
  read, and still treat a ``kind: Status, status: Failure`` body as an error.
- **Unknown kinds** make discovery raise ResourceNotFoundError, but so does a discovery document
  that failed to load (the library swallows that). We ask the group-version's discovery document
  ourselves to tell "no such kind" (permanent, 404) from "discovery is failing" (temporary).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes_asyncio.dynamic.resource import Resource

from handlers import credentials, errors, transport
from ledger import credentials as credentials_mod

log = logging.getLogger(__name__)

MANAGER = "ledger"


def _decode(raw: bytes, content_type: str | None) -> Any:
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return errors.NotJson.of(raw, content_type)


def group_version_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class Client:
    """One target's Kubernetes API, with translated errors and bounded calls."""

    def __init__(self, name: str, credential: credentials_mod.Credential, api: transport.ApiClient,
                 cache_file: Path, timeout: float) -> None:
        self.name = name
        self.credential = credential
        self.api = api
        self.cache_file = cache_file
        self.timeout = timeout
        self._dyn: DynamicClient | None = None

    async def _call(self, what: str, send: Callable[[], Awaitable[Any]]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                resp = await send()
                try:
                    raw = await resp.read()
                finally:
                    resp.release()
        except errors.ApplyError:
            raise
        except Exception as exc:
            raise errors.from_exception(exc, what=what) from exc
        body = _decode(raw, resp.headers.get("Content-Type"))
        if resp.status >= 400:
            raise errors.from_status(resp.status, body, resp.headers, what=what)
        if isinstance(body, errors.NotJson):
            # Not an API server (a proxy's or a portal's page): try again later, quoting nothing of it.
            raise errors.TemporaryError(f"HTTP {resp.status} from {what}: {body.describe()}", status=resp.status)
        if isinstance(body, dict) and body.get("kind") == "Status" and body.get("status") == "Failure":
            raise errors.from_status(int(body.get("code") or 500), body, what=what)
        return body

    async def get_path(self, path: str) -> Any:
        """GET a path of the API server (discovery documents), errors translated."""
        return await self._call(f"GET {path}", lambda: self.api.call_api(
            path, "GET", header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
            _preload_content=False, _return_http_data_only=True, _request_timeout=self.timeout))

    async def dynamic(self) -> DynamicClient:
        if self._dyn is None:
            try:
                async with asyncio.timeout(self.timeout):
                    self._dyn = await DynamicClient(self.api, cache_file=str(self.cache_file),
                                                    discoverer=transport.Discoverer)
            except Exception as exc:
                # Find out what the server says; discovery itself hides HTTP statuses.
                for path in ("/version", "/apis"):
                    await self.get_path(path)
                raise errors.from_exception(exc, what="discovery") from exc
        return self._dyn

    async def resource(self, api_version: str, kind: str) -> Resource:
        dyn = await self.dynamic()
        group, _, version = api_version.rpartition("/")
        # Name the prefix and group: "v1" alone would make the library search (and fetch) every
        # group that has a version called v1.
        where = {"prefix": "apis", "group": group} if group else {"prefix": "api"}
        try:
            async with asyncio.timeout(self.timeout):
                found: Resource = await dyn.resources.get(**where, api_version=version, kind=kind)
                return found
        except ResourceNotFoundError:
            pass
        except ResourceNotUniqueError as exc:
            raise errors.PermanentError(f"{kind} in {api_version} is ambiguous: {exc}") from exc
        except Exception as exc:
            raise errors.from_exception(exc, what=f"discovery of {api_version} {kind}") from exc
        try:
            listing = await self.get_path(group_version_path(api_version))
        except errors.ApplyError as exc:
            if exc.status != 404:
                raise
            listing = {}
        kinds = {r.get("kind") for r in (listing or {}).get("resources") or [] if isinstance(r, dict)}
        if kind in kinds:
            raise errors.TemporaryError(f"discovery of {api_version} {kind} failed; will retry")
        raise errors.PermanentError(f'no matches for kind "{kind}" in version "{api_version}"', status=404)

    async def apply(self, resource: Resource, body: dict[str, Any], namespace: str | None, *,
                    dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply (fieldManager ``ledger``, force); returns the object as stored, or with
        ``dry_run`` as it would be stored (``dryRun=All``: the server changes nothing)."""
        dyn = await self.dynamic()
        name = body["metadata"]["name"]
        extra = {"dry_run": "All"} if dry_run else {}
        result = await self._call(f"apply {resource.kind} {name}", lambda: dyn.server_side_apply(
            resource, body=body, name=name, namespace=namespace, field_manager=MANAGER,
            force_conflicts=True, serialize=False, _request_timeout=self.timeout, **extra))
        return result if isinstance(result, dict) else {}

    async def list_at(self, resource: Resource, namespace: str | None,
                      label_selector: str) -> tuple[list[dict[str, Any]], str]:
        """Every matching object and the list's resourceVersion, to watch from (handlers.watching)."""
        dyn = await self.dynamic()
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._call(f"list {resource.kind}", functools.partial(
                dyn.get, resource, namespace=namespace, label_selector=label_selector, limit=500,
                _continue=token, serialize=False, _request_timeout=self.timeout))
            items.extend(i for i in (page or {}).get("items") or [] if isinstance(i, dict))
            meta = (page or {}).get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def get(self, resource: Resource, name: str, namespace: str | None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        dyn = await self.dynamic()
        try:
            found = await self._call(f"get {resource.kind} {name}", lambda: dyn.get(
                resource, name=name, namespace=namespace, serialize=False, _request_timeout=self.timeout))
        except errors.PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    async def list(self, resource: Resource, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
        items, _ = await self.list_at(resource, namespace, label_selector)
        return items

    async def open_watch(self, resource: Resource, namespace: str | None, label_selector: str,
                         resource_version: str, timeout_seconds: int) -> aiohttp.ClientResponse:
        """A watch from ``resource_version`` with bookmarks, as a response whose body the caller reads
        line by line and releases. Opening is bounded by ``timeout``; the stream by
        ``timeout_seconds`` on the server and, should the connection die silently, a read timeout."""
        path = resource.path(namespace=namespace)
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("labelSelector", label_selector),
                 ("resourceVersion", resource_version), ("timeoutSeconds", str(timeout_seconds))]
        limits = aiohttp.ClientTimeout(connect=self.timeout, sock_connect=self.timeout,
                                       sock_read=timeout_seconds + self.timeout)
        what = f"watch {resource.kind}"
        try:
            async with asyncio.timeout(self.timeout):
                resp: aiohttp.ClientResponse = await self.api.call_api(
                    path, "GET", query_params=query, header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                    _request_timeout=limits)
        except errors.ApplyError:
            raise
        except Exception as exc:
            raise errors.from_exception(exc, what=what) from exc
        if resp.status >= 400:
            try:
                async with asyncio.timeout(self.timeout):
                    raw = await resp.read()
            except Exception as exc:
                raise errors.from_exception(exc, what=what) from exc
            finally:
                resp.release()
            raise errors.from_status(resp.status, _decode(raw, resp.headers.get("Content-Type")), resp.headers,
                                     what=what)
        return resp

    async def delete(self, resource: Resource, name: str, namespace: str | None) -> bool:
        """Delete one object (background propagation); False when it was already gone."""
        dyn = await self.dynamic()
        try:
            await self._call(f"delete {resource.kind} {name}", lambda: dyn.delete(
                resource, name=name, namespace=namespace, propagation_policy="Background",
                serialize=False, _request_timeout=self.timeout))
        except errors.PermanentError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def flush(self) -> None:
        """Write the discovery cache file if discovery learnt something (once per pass), off the loop."""
        if self._dyn is not None:
            discoverer = self._dyn.resources
            found = discoverer.pending() if isinstance(discoverer, transport.Discoverer) else None
            if found is not None:
                await asyncio.to_thread(transport.write, *found)

    async def close(self) -> None:
        await self.flush()
        with contextlib.suppress(Exception):
            await self.api.close()


class Pool:
    """The clients of every target this process applies to."""

    def __init__(self, cache_dir: Path, *, timeout: float, user_agent: str) -> None:
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.user_agent = user_agent
        self._clients: dict[str, Client] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def cache_file(self, name: str, credential: credentials_mod.Credential) -> Path:
        digest = hashlib.sha256(repr(credential).encode()).hexdigest()[:12]
        return self.cache_dir / f"{name}-{digest}.json"

    async def get(self, name: str, credential: credentials_mod.Credential) -> Client:
        # One at a time per target: the applier's pass and the health watches may ask together, and
        # two replacing one client at once would leave one of the new ones unclosed.
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            return await self._get(name, credential)

    async def _get(self, name: str, credential: credentials_mod.Credential) -> Client:
        client = self._clients.get(name)
        if client is not None and client.credential == credential:
            return client
        if client is not None:
            await self.drop(name)
        cfg = await credentials.configuration(credential)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        api = transport.ApiClient(cfg, self.user_agent)
        client = Client(name, credential, api, self.cache_file(name, credential), self.timeout)
        self._clients[name] = client
        return client

    async def drop(self, name: str) -> None:
        """Close a target's client and forget its discovery cache."""
        client = self._clients.pop(name, None)
        if client is not None:
            await client.close()
            with contextlib.suppress(OSError):
                client.cache_file.unlink()

    def __contains__(self, name: object) -> bool:
        return name in self._clients

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
