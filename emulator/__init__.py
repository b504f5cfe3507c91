"""An in-process, multi-cluster Kubernetes API server emulator over real HTTP.

It exists so the deployment ledger (and its tests, demo and benchmarks) can
talk to "clusters" through the real kubernetes-asyncio client without a real
cluster: discovery, server-side apply with field ownership, CRUD with label
and field selectors, namespaces, validation errors as ``Status`` bodies,
watches (resourceVersion, bookmarks, 410 Expired), workload controllers that
move status as a real cluster does (a rollout delay per cluster; images tagged
``:crashloop`` never become ready, see :mod:`emulator.controllers`), and
injectable faults (error statuses, 429 with Retry-After, slow answers,
dropped connections and watches, whole clusters down). docs/health.md says
how it behaves.

Start with :func:`serve` or :class:`Emulator`; each cluster's API base URL is
``http://HOST:PORT/clusters/<name>``.
"""

from emulator.catalog import DEFAULT_CATALOG, Catalog, ResourceType
from emulator.cluster import Cluster
from emulator.faults import Fault
from emulator.requestlog import RequestRecord
from emulator.server import Emulator, serve
from emulator.status import ApiError

__all__ = [
    "DEFAULT_CATALOG",
    "ApiError",
    "Catalog",
    "Cluster",
    "Emulator",
    "Fault",
    "RequestRecord",
    "ResourceType",
    "serve",
]
