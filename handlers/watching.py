"""Shared watches: one list-then-watch per (cluster, apiVersion, kind, namespace), whatever number of
deployments and objects on that cluster are followed through it.

Health is followed from live objects (handlers.follow). Polling every object would cost a request per
object per interval; a watch per object a connection each. Instead an :class:`Informer` keeps one
cache per cluster, kind and namespace of every object that carries the ledger's deployment label
(``ledger.dev/deployment``, so objects of other tools are never read), the way client-go's
informers do: list (its resourceVersion), then watch from there with bookmarks. So a cluster costs
one connection per kind and namespace the followed objects span, shared by every deployment, and
nothing per object.

- **Resume, do not re-list**: a watch that ends (the server's ``timeoutSeconds``, a dropped or
  truncated connection, a read timeout) is opened again from the last resourceVersion seen, which
  every event and bookmark moves.
- **410 Gone** (the version is older than the server's watch history: an ``ERROR`` event with a
  ``Status`` of code 410, or an HTTP 410) lists again and replaces the cache; subscribers hear of
  every object that changed or vanished meanwhile.
- **Errors back off** (handlers.backoff, capped) and are kept in ``error`` so a follower that reaches
  its deadline can say why it saw nothing. An unexpected exception is logged with its traceback,
  counted (component ``applier-health-watch`` in the registry's restarts) and retried the same way:
  an informer never dies silently, and one cluster's trouble never stops another's.
- An informer lives while someone subscribes to it; the last one leaving cancels it, which closes
  its connection.

kubernetes-asyncio's own ``watch.Watch`` is not used: it builds a new ``ApiClient`` (an SSL context
and a session) per watch, retries a 410 with the same expired version, and decodes with ``json``
into a copy per event. The target's client (handlers.clients) opens the watch on its own pooled
connections; lines are decoded with msgspec.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import aiohttp
import msgspec

from handlers import backoff, clients, errors, objects
from ledger import components

log = logging.getLogger(__name__)

SELECTOR: Final = objects.DEPLOYMENT_LABEL  # every object the ledger applied, whichever deployment
WATCH_SECONDS: Final = 300  # the server ends a watch after this long (jittered); it is resumed
RESTARTS: Final = "applier-health-watch"

# (target, apiVersion, kind, namespace or None for a cluster-scoped kind)
Key = tuple[str, str, str, str | None]
Listener = Callable[[str | None], None]  # the name of the object that changed; None: possibly any
ClientFor = Callable[[str], Awaitable[clients.Client]]


class Expired(Exception):
    """The watch's resourceVersion is older than the server's history (410): list again."""


class _Event(msgspec.Struct):
    type: str
    object: dict[str, Any]


_decode_event: Final = msgspec.json.Decoder(_Event)


def _version(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata")
    version = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(version) if version else None


def _name(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


class Informer:
    """One cluster's objects of one kind in one namespace that carry the ledger's label."""

    def __init__(self, key: Key, client_for: ClientFor, registry: components.Registry, *,
                 totals: dict[str, int] | None = None, backoff_base: float = 0.2, backoff_cap: float = 10.0) -> None:
        self.key = key
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = False
        self.error: str | None = None
        self.connected = False
        self.listeners: dict[object, Listener] = {}
        self.task: asyncio.Task[None] | None = None
        self.lists = 0
        self.resumes = 0
        self._totals = totals if totals is not None else {}
        self._client_for = client_for
        self._registry = registry
        self._base = backoff_base
        self._cap = backoff_cap

    def _tell(self, name: str | None) -> None:
        for listener in list(self.listeners.values()):
            listener(name)

    def _replace(self, items: list[dict[str, Any]]) -> None:
        fresh = {name: item for item in items if (name := _name(item)) is not None}
        old, self.objects = self.objects, fresh
        first = not self.synced
        self.synced = True
        if first:
            self._tell(None)
            return
        for name in set(old) | set(fresh):
            before, after = old.get(name), fresh.get(name)
            if (before is None) != (after is None) or _version(before or {}) != _version(after or {}):
                self._tell(name)

    async def run(self) -> None:
        target, api_version, kind, namespace = self.key
        version: str | None = None
        failures = 0
        while True:
            try:
                client = await self._client_for(target)
                resource = await client.resource(api_version, kind)
                if version is None:
                    items, version = await client.list_at(resource, namespace, SELECTOR)
                    self.lists += 1
                    self._totals["lists"] = self._totals.get("lists", 0) + 1
                    self._replace(items)
                else:
                    self.resumes += 1
                    self._totals["resumes"] = self._totals.get("resumes", 0) + 1
                self.error = None
                version = await self._watch(client, resource, version)
                failures = 0
                continue
            except Expired:
                version = None
                failures += 1
                if failures == 1:
                    continue  # list again at once; a second 410 in a row backs off
                self.error = "the watch expired twice in a row (410 Gone)"
            except errors.ApplyError as exc:
                failures += 1
                if exc.status == 410:
                    version = None
                self.error = exc.message
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                failures += 1  # dropped or truncated: resume from ``version``
                self.error = f"watch of {kind} interrupted: {exc!r}"
            except Exception as exc:
                failures += 1
                self.error = f"watch of {kind} failed: {components.error_text(exc)}"
                log.error("health watch %s crashed (%d in a row); retrying", self.key, failures, exc_info=exc)
                self._registry.count_restart(RESTARTS)
            finally:
                self.connected = False
            await asyncio.sleep(backoff.delay(failures, base=self._base, cap=self._cap))

    async def _watch(self, client: clients.Client, resource: Any, version: str) -> str:
        """Follow changes from ``version`` until the stream ends; returns where to resume."""
        seconds = int(WATCH_SECONDS * (0.8 + 0.4 * random.random()))
        resp = await client.open_watch(resource, self.key[3], SELECTOR, version, seconds)
        self.connected = True
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return version
                if not line.strip():
                    continue
                try:
                    event = _decode_event.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise errors.TemporaryError(f"watch of {resource.kind} sent a line that is not an event: "
                                                f"{errors.clean(line.decode('utf-8', 'replace'))}") from exc
                version = self._take(event, version)
        finally:
            resp.release()

    def _take(self, event: _Event, version: str) -> str:
        obj = event.object
        if event.type == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Expired()
            raise errors.TemporaryError(f"watch error {code}: {errors.clean(str(obj.get('message', '')))}",
                                        status=code if isinstance(code, int) else None)
        found = _version(obj) or version
        if event.type == "BOOKMARK":
            return found
        name = _name(obj)
        if name is None:
            return found
        if event.type == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        self._tell(name)
        return found


class Watches:
    """Every informer of this process, shared by key; started in the follower's task group."""

    def __init__(self, client_for: ClientFor, registry: components.Registry,
                 spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None] | None], *,
                 backoff_base: float = 0.2, backoff_cap: float = 10.0) -> None:
        self._client_for = client_for
        self._registry = registry
        self._spawn = spawn
        self._base = backoff_base
        self._cap = backoff_cap
        self.informers: dict[Key, Informer] = {}
        self.totals: dict[str, int] = {"lists": 0, "resumes": 0}

    def subscribe(self, key: Key, owner: object, listener: Listener) -> Informer:
        informer = self.informers.get(key)
        if informer is None:
            informer = Informer(key, self._client_for, self._registry, totals=self.totals,
                                backoff_base=self._base, backoff_cap=self._cap)
            self.informers[key] = informer
            informer.task = self._spawn(informer.run(), f"health-watch-{key[0]}-{key[2]}")
        informer.listeners[owner] = listener
        return informer

    def unsubscribe(self, key: Key, owner: object) -> None:
        informer = self.informers.get(key)
        if informer is None:
            return
        informer.listeners.pop(owner, None)
        if not informer.listeners:
            del self.informers[key]
            if informer.task is not None:
                informer.task.cancel()

    def stop(self) -> None:
        for informer in self.informers.values():
            if informer.task is not None:
                informer.task.cancel()
        self.informers.clear()

    def status(self) -> dict[str, int]:
        informers = list(self.informers.values())
        return {
            "watches": len(informers),
            "connected": sum(1 for i in informers if i.connected),
            "clusters": len({i.key[0] for i in informers}),
            "failing": sum(1 for i in informers if i.error is not None),
            **self.totals,
        }
