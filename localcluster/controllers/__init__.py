"""In-process controllers: each a watch-driven reconcile loop writing through the API pipeline."""

from __future__ import annotations

import asyncio

from localcluster.api.cluster import Cluster
from localcluster.controllers.base import reconcile_on_changes
from localcluster.controllers.endpoints import EndpointsController
from localcluster.controllers.garbage_collector import GarbageCollector
from localcluster.controllers.namespaces import NamespaceController


def start_controllers(cluster: Cluster) -> list[asyncio.Task[None]]:
    """Start every controller on the running loop; cancel the tasks to stop them."""
    loops = [
        ("garbage-collector", GarbageCollector(cluster).reconcile, None),
        ("namespace-controller", NamespaceController(cluster).reconcile, None),
        ("endpoints-controller", EndpointsController(cluster).reconcile, None),
    ]
    return [
        asyncio.create_task(reconcile_on_changes(cluster, name, reconcile, key=key), name=name)
        for name, reconcile, key in loops
    ]
