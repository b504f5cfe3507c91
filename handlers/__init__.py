"""The applier: desired state per target, applied to clusters with kubernetes-asyncio.

Importing this package registers kubernetes-asyncio's generated API and models as deferred
(handlers/kube.py) before any module here imports the library, so a process that only applies
does not load them.
"""

from handlers import kube

kube.install()
