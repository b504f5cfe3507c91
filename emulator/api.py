"""The Kubernetes API surface of every emulated cluster, over aiohttp.

One catch-all route, ``/clusters/{cluster}/...``, serves all clusters: the
handler finds the cluster, lets its faults shape or swallow the request,
resolves the path (:mod:`emulator.routing`), calls the matching
:class:`~emulator.cluster.Cluster` operation and renders the result or a
``Status`` error.  Every request is recorded in the cluster's request log.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web
from multidict import MultiMapping

from emulator import codec, routing, watchstream
from emulator.cluster import Cluster
from emulator.discovery import Discovery
from emulator.faults import Fault
from emulator.patches import APPLY_PATCH, APPLY_PATCH_CBOR, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from emulator.requestlog import RequestRecord
from emulator.selectors import make_filter
from emulator.status import ApiError, bad_request, method_not_allowed, unsupported_media_type

log = logging.getLogger(__name__)
JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ClusterDirectory(Protocol):
    """What the API handler needs from the emulator that owns it."""

    discovery: Discovery

    def lookup(self, name: str) -> Cluster | None: ...

    async def pause(self, seconds: float) -> bool:
        """Sleep; False if the emulator is stopping and the request should be dropped."""
        ...


def _json_response(status: int, payload: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=payload, status=status, content_type=JSON, headers=headers)


def _error_response(error: ApiError) -> web.Response:
    return _json_response(error.code, codec.encode(error.body()), error.headers)


def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering; the response below is never sent."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=503)


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _dry_run(query: MultiMapping[str]) -> bool:
    values = query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise bad_request(f'unsupported dry run option "{value}": only "All" is supported')
    return bool(values)


def _manager(query: MultiMapping[str], user_agent: str) -> str:
    """fieldManager, or the User-Agent prefix like the real API server derives it."""
    manager = query.get("fieldManager")
    if manager:
        return manager
    return (user_agent.split("/", 1)[0] or "unknown")[:128]


def _continue_token(namespace: str, name: str, rv: str) -> str:
    raw = codec.encode({"rv": rv, "start": [namespace, name]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_continue(token: str) -> tuple[str, str]:
    try:
        data = codec.decode_json(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        namespace, name = data["start"]
        return str(namespace), str(name)
    except (ApiError, binascii.Error, KeyError, TypeError, ValueError) as exc:
        raise bad_request(f"continue key is not valid: {token}") from exc


def _list(cluster: Cluster, target: routing.Target, query: MultiMapping[str]) -> bytes:
    rt = target.rt
    assert rt is not None
    predicate = make_filter(query.get("labelSelector"), query.get("fieldSelector"), rt)
    items = cluster.select(rt, target.namespace, predicate)
    rv = cluster.resource_version
    metadata: dict[str, Any] = {"resourceVersion": rv}
    token = query.get("continue")
    if token:
        start = _parse_continue(token)
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
    limit_text = query.get("limit")
    if limit_text:
        try:
            limit = int(limit_text)
        except ValueError as exc:
            raise bad_request(f"invalid limit: {limit_text}") from exc
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]
            metadata["continue"] = _continue_token(last.get("namespace", ""), last["name"], rv)
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
    return codec.encode(
        {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata, "items": items}
    )


def _delete_options(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    options = codec.decode_json(body)
    return options if isinstance(options, dict) else {}


def _collection(
    cluster: Cluster,
    target: routing.Target,
    method: str,
    query: MultiMapping[str],
    body: bytes,
    user_agent: str,
) -> tuple[int, bytes]:
    rt = target.rt
    assert rt is not None
    if method == "GET":
        return 200, _list(cluster, target, query)
    if rt.namespaced and target.namespace is None:
        raise method_not_allowed()
    if method == "POST":
        obj = codec.decode_object(body, yaml_allowed=False)
        created = cluster.create(
            rt, target.namespace, obj, manager=_manager(query, user_agent), dry_run=_dry_run(query)
        )
        return 201, codec.encode(created)
    if method == "DELETE" and "deletecollection" in rt.verbs:
        options = _delete_options(body)
        dry_run = _dry_run(query) or bool(options.get("dryRun"))
        predicate = make_filter(query.get("labelSelector"), query.get("fieldSelector"), rt)
        deleted = cluster.delete_collection(rt, target.namespace, predicate, dry_run=dry_run)
        doc = {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": cluster.resource_version},
            "items": deleted,
        }
        return 200, codec.encode(doc)
    raise method_not_allowed()


def _item(
    cluster: Cluster,
    target: routing.Target,
    method: str,
    query: MultiMapping[str],
    content_type: str,
    body: bytes,
    user_agent: str,
) -> tuple[int, bytes]:
    rt, name, namespace = target.rt, target.name, target.namespace
    assert rt is not None and name is not None
    status_only = target.subresource == "status"
    if method == "GET":
        return 200, codec.encode(cluster.read(rt, namespace, name))
    if method == "PUT":
        obj = codec.decode_object(body, yaml_allowed=False)
        result = cluster.replace(
            rt,
            namespace,
            name,
            obj,
            manager=_manager(query, user_agent),
            dry_run=_dry_run(query),
            status_only=status_only,
        )
        return 200, codec.encode(result)
    if method == "PATCH":
        media = content_type.split(";", 1)[0].strip().lower()
        dry_run = _dry_run(query)
        if media == APPLY_PATCH:
            config = codec.decode_object(body, yaml_allowed=True)
            force = _is_true(query.get("force"))
            manager = query.get("fieldManager", "")
            if status_only:
                result = cluster.apply_status(
                    rt, namespace, name, config, manager=manager, force=force, dry_run=dry_run
                )
                return 200, codec.encode(result)
            obj, created = cluster.apply(
                rt, namespace, name, config, manager=manager, force=force, dry_run=dry_run
            )
            return (201 if created else 200), codec.encode(obj)
        if media == APPLY_PATCH_CBOR:
            raise unsupported_media_type(media)
        if media in (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH):
            if _is_true(query.get("force")):
                raise bad_request("force may only be specified with apply patch requests")
            patch = codec.decode_json(body)
            result = cluster.patch(
                rt,
                namespace,
                name,
                media,
                patch,
                manager=_manager(query, user_agent),
                dry_run=dry_run,
                status_only=status_only,
            )
            return 200, codec.encode(result)
        raise unsupported_media_type(media)
    if method == "DELETE" and not status_only:
        options = _delete_options(body)
        dry_run = _dry_run(query) or bool(options.get("dryRun"))
        code, result = cluster.delete(
            rt, namespace, name, dry_run=dry_run, preconditions=options.get("preconditions")
        )
        return code, codec.encode(result)
    raise method_not_allowed()


def dispatch(
    discovery: Discovery,
    cluster: Cluster,
    path: str,
    method: str,
    query: MultiMapping[str],
    content_type: str,
    body: bytes,
    user_agent: str,
    host: str,
) -> tuple[int, bytes, str]:
    """Serve one API request against ``cluster``: (status, body, content type).

    Failures are raised as ApiError.
    """
    target = routing.resolve(cluster.catalog, path)
    what = target.what
    if what == routing.COLLECTION:
        return (*_collection(cluster, target, method, query, body, user_agent), JSON)
    if what == routing.ITEM:
        return (*_item(cluster, target, method, query, content_type, body, user_agent), JSON)
    if method != "GET":
        raise method_not_allowed()
    if what == routing.HEALTH:
        return 200, b"ok", "text/plain"
    if what == routing.VERSION:
        doc = discovery.version
    elif what == routing.CORE_VERSIONS:
        doc = discovery.core_versions(host)
    elif what == routing.GROUP_LIST:
        doc = discovery.group_list
    elif what == routing.GROUP:
        doc = discovery.groups[target.group]
    elif what == routing.RESOURCE_LIST:
        doc = discovery.resource_lists[(target.group, target.version)]
    else:
        doc = discovery.root
    return 200, doc, JSON


def _fault_target(cluster: Cluster, path: str) -> routing.Target | None:
    try:
        return routing.resolve(cluster.catalog, path)
    except ApiError:
        return None


async def _watch(
    request: web.Request,
    cluster: Cluster,
    path: str,
    fault: Fault | None,
    record: Callable[[int | None, str | None], None],
) -> web.StreamResponse:
    """A watch request: answered as a stream (emulator.watchstream) unless it fails up front."""
    try:
        target = routing.resolve(cluster.catalog, path)
        if target.what not in (routing.COLLECTION, routing.ITEM) or target.subresource is not None:
            raise method_not_allowed()
    except ApiError as error:
        record(error.code, None)
        return _error_response(error)
    record(200, "drop_after" if fault is not None and fault.drop_after is not None else None)
    try:
        return await watchstream.serve(
            request, cluster, target, request.query, fault.drop_after if fault is not None else None
        )
    except ApiError as error:  # raised before the stream started (bad resourceVersion, selector)
        return _error_response(error)


def make_handler(directory: ClusterDirectory) -> Handler:
    """The aiohttp handler for ``/clusters/{cluster}{tail}``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        cluster = directory.lookup(request.match_info["cluster"])
        if cluster is None:
            name = request.match_info["cluster"]
            return _error_response(
                ApiError(404, "NotFound", f'cluster "{name}" is not known to the emulator', {"name": name})
            )
        path = request.match_info["tail"] or "/"
        method = request.method
        body = await request.read() if request.body_exists else b""
        content_type = request.headers.get("Content-Type", "")
        query = request.query

        def record(status: int | None, fault: str | None = None) -> None:
            cluster.requests.append(
                RequestRecord(method, path, status, dict(query), content_type, body, fault)
            )

        if cluster.down:
            record(None, "down")
            return _drop(request)
        watch = method == "GET" and _is_true(query.get("watch"))
        fault: Fault | None = cluster.faults.take(method, path, watch=watch) if cluster.faults else None
        if fault is not None:
            if fault.delay and not await directory.pause(fault.delay):
                record(None, "drop")
                return _drop(request)
            if fault.drop:
                record(None, "drop")
                return _drop(request)
            if fault.status is not None:
                injected = fault.error(method, _fault_target(cluster, path))
                record(injected.code, "status")
                return _error_response(injected)
        if watch:
            return await _watch(request, cluster, path, fault, record)
        try:
            status, payload, media = dispatch(
                directory.discovery,
                cluster,
                path,
                method,
                query,
                content_type,
                body,
                request.headers.get("User-Agent", ""),
                request.host,
            )
        except ApiError as error:
            record(error.code, "delay" if fault else None)
            return _error_response(error)
        except Exception as exc:  # an emulator bug: answer like an apiserver panic would
            log.exception("emulator failed on %s %s", method, path)
            record(500, None)
            return _error_response(
                ApiError(500, "InternalError", f"Internal error occurred: {type(exc).__name__}: {exc}")
            )
        record(status, "delay" if fault else None)
        return web.Response(body=payload, status=status, content_type=media)

    return handle
