"""Admin HTTP endpoints under ``/_emulator`` for tests and tools in other processes.

Everything here mirrors the Python API of :class:`~emulator.server.Emulator`
and :class:`~emulator.cluster.Cluster`: create/remove clusters, read and
tamper with objects out of band, inject and clear faults, flip a cluster
down, and read the request log.  Errors use Kubernetes ``Status`` bodies too.

=========  =================================================  ==============================
Method     Path                                               Effect
=========  =================================================  ==============================
GET        /_emulator/clusters                                list clusters and their URLs
PUT        /_emulator/clusters/{name}                         create (idempotent)
GET        /_emulator/clusters/{name}                         summary
DELETE     /_emulator/clusters/{name}                         remove
POST       /_emulator/clusters/{name}/reset                   forget objects, faults, log
GET        /_emulator/clusters/{name}/objects                 ?apiVersion=&kind=&namespace=
POST       /_emulator/clusters/{name}/objects                 create/replace object (JSON)
PATCH      /_emulator/clusters/{name}/objects                 merge-patch (body names object)
DELETE     /_emulator/clusters/{name}/objects                 ?apiVersion=&kind=&namespace=&name=
GET        /_emulator/clusters/{name}/requests                request log
DELETE     /_emulator/clusters/{name}/requests                clear the log
GET|POST   /_emulator/clusters/{name}/faults                  list / add (JSON Fault fields)
DELETE     /_emulator/clusters/{name}/faults[/{id}]           clear all / one
POST       /_emulator/clusters/{name}/down                    cluster drops every connection
DELETE     /_emulator/clusters/{name}/down                    cluster is back
GET        /_emulator/clusters/{name}/settings                rollout_delay, controllers, ...
PATCH      /_emulator/clusters/{name}/settings                change some (JSON object)
POST       /_emulator/clusters/{name}/watches/drop            cut every open watch stream
POST       /_emulator/clusters/{name}/compact                 forget history: old watches 410
=========  =================================================  ==============================

Settings (see :meth:`Cluster.settings`): ``rollout_delay`` (seconds until workloads become ready,
see :mod:`emulator.controllers`), ``controllers`` (false freezes every status), ``nodes`` (pods
per DaemonSet), ``bookmark_interval`` (seconds between watch bookmarks), ``watch_history``
(changes kept for resuming watches).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from emulator import codec
from emulator.api import Handler
from emulator.cluster import Cluster
from emulator.faults import Fault
from emulator.status import ApiError, bad_request


class AdminTarget(Protocol):
    """What the admin endpoints need from the emulator."""

    def add_cluster(self, name: str) -> Cluster: ...

    def remove_cluster(self, name: str) -> bool: ...

    def cluster(self, name: str) -> Cluster: ...

    def cluster_names(self) -> list[str]: ...

    def cluster_url(self, name: str) -> str: ...


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=codec.encode(data), status=status, content_type="application/json")


def _error(error: ApiError) -> web.Response:
    return web.Response(
        body=codec.encode(error.body()),
        status=error.code,
        content_type="application/json",
        headers=error.headers,
    )


async def _body(request: web.Request) -> dict[str, Any]:
    return codec.decode_object(await request.read(), yaml_allowed=True)


def _summary(target: AdminTarget, cluster: Cluster) -> dict[str, Any]:
    return {
        "name": cluster.name,
        "url": target.cluster_url(cluster.name),
        "down": cluster.down,
        "resourceVersion": cluster.resource_version,
        "faults": [f.to_dict() for f in cluster.faults],
        "requests": len(cluster.requests),
        "watches": len(cluster.hub),
        "settings": cluster.settings(),
    }


def admin_routes(target: AdminTarget) -> list[web.RouteDef]:
    """Route definitions to add to the emulator's aiohttp application."""

    def find(request: web.Request) -> Cluster:
        name = request.match_info["name"]
        try:
            return target.cluster(name)
        except KeyError:
            raise ApiError(404, "NotFound", f'cluster "{name}" not found', {"name": name}) from None

    def guarded(fn: Callable[[web.Request], Awaitable[web.Response]]) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except ApiError as error:
                return _error(error)
            except KeyError as exc:
                return _error(ApiError(404, "NotFound", str(exc.args[0] if exc.args else exc)))
            except (ValueError, TypeError) as exc:
                return _error(bad_request(str(exc)))

        return wrapper

    async def list_clusters(_request: web.Request) -> web.Response:
        return _json(
            {"clusters": [{"name": n, "url": target.cluster_url(n)} for n in target.cluster_names()]}
        )

    async def put_cluster(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        existed = name in target.cluster_names()
        cluster = target.add_cluster(name)
        return _json(_summary(target, cluster), 200 if existed else 201)

    async def get_cluster(request: web.Request) -> web.Response:
        return _json(_summary(target, find(request)))

    async def delete_cluster(request: web.Request) -> web.Response:
        find(request)
        target.remove_cluster(request.match_info["name"])
        return _json({"deleted": request.match_info["name"]})

    async def reset_cluster(request: web.Request) -> web.Response:
        cluster = find(request)
        cluster.reset()
        return _json(_summary(target, cluster))

    async def get_objects(request: web.Request) -> web.Response:
        q = request.query
        items = find(request).objects(q.get("apiVersion"), q.get("kind"), q.get("namespace"))
        return _json({"items": items})

    async def post_object(request: web.Request) -> web.Response:
        return _json(find(request).put_object(await _body(request)))

    async def patch_object(request: web.Request) -> web.Response:
        cluster = find(request)
        body = await _body(request)
        meta = body.get("metadata") or {}
        obj = cluster.patch_object(
            str(body.get("apiVersion", "")),
            str(body.get("kind", "")),
            meta.get("namespace"),
            str(meta.get("name", "")),
            body,
        )
        return _json(obj)

    async def delete_object(request: web.Request) -> web.Response:
        q = request.query
        deleted = find(request).delete_object(
            q.get("apiVersion", ""), q.get("kind", ""), q.get("namespace"), q.get("name", "")
        )
        return _json({"deleted": deleted}, 200 if deleted else 404)

    async def get_requests(request: web.Request) -> web.Response:
        return _json({"items": [r.to_dict() for r in find(request).requests]})

    async def clear_requests(request: web.Request) -> web.Response:
        find(request).requests.clear()
        return _json({"cleared": True})

    async def get_faults(request: web.Request) -> web.Response:
        return _json({"items": [f.to_dict() for f in find(request).faults]})

    async def add_fault(request: web.Request) -> web.Response:
        cluster = find(request)
        fault = cluster.add_fault(Fault.from_dict(await _body(request)))
        return _json(fault.to_dict(), 201)

    async def clear_faults(request: web.Request) -> web.Response:
        find(request).clear_faults()
        return _json({"cleared": True})

    async def delete_fault(request: web.Request) -> web.Response:
        removed = find(request).faults.remove(int(request.match_info["fault_id"]))
        return _json({"deleted": removed}, 200 if removed else 404)

    async def set_down(request: web.Request) -> web.Response:
        cluster = find(request)
        cluster.down = True
        return _json(_summary(target, cluster))

    async def set_up(request: web.Request) -> web.Response:
        cluster = find(request)
        cluster.down = False
        return _json(_summary(target, cluster))

    async def get_settings(request: web.Request) -> web.Response:
        return _json(find(request).settings())

    async def patch_settings(request: web.Request) -> web.Response:
        cluster = find(request)
        return _json(cluster.configure(await _body(request)))

    async def drop_watches(request: web.Request) -> web.Response:
        return _json({"dropped": find(request).drop_watches()})

    async def compact(request: web.Request) -> web.Response:
        return _json({"resourceVersion": find(request).compact()})

    base = "/_emulator/clusters"
    one = base + "/{name}"
    table = [
        ("GET", base, list_clusters),
        ("PUT", one, put_cluster),
        ("GET", one, get_cluster),
        ("DELETE", one, delete_cluster),
        ("POST", one + "/reset", reset_cluster),
        ("GET", one + "/objects", get_objects),
        ("POST", one + "/objects", post_object),
        ("PATCH", one + "/objects", patch_object),
        ("DELETE", one + "/objects", delete_object),
        ("GET", one + "/requests", get_requests),
        ("DELETE", one + "/requests", clear_requests),
        ("GET", one + "/faults", get_faults),
        ("POST", one + "/faults", add_fault),
        ("DELETE", one + "/faults", clear_faults),
        ("DELETE", one + "/faults/{fault_id:\\d+}", delete_fault),
        ("POST", one + "/down", set_down),
        ("DELETE", one + "/down", set_up),
        ("GET", one + "/settings", get_settings),
        ("PATCH", one + "/settings", patch_settings),
        ("POST", one + "/watches/drop", drop_watches),
        ("POST", one + "/compact", compact),
    ]
    return [web.route(method, path, guarded(handler)) for method, path, handler in table]
