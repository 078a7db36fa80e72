"""What every in-process controller shares: a watch-driven loop that reconciles after changes, and
the writes every controller makes alike: the controller reference a child carries, an update that
a newer change may refuse, and a status written back only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceType
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.controllers")

Obj = dict[str, Any]


async def reconcile_on_changes(
    cluster: Cluster,
    name: str,
    reconcile: Callable[[list[WatchEvent]], None],
    *,
    keys: Collection[str] | None = None,
    resync: float | None = None,
) -> None:
    """Call `reconcile` once at start, after each batch of changes to `keys` (None: any kind), and
    every `resync` seconds if given (for state that changes with time, such as minReadySeconds).

    Batching the queued events makes a burst of writes cost one pass, and a pass that writes
    triggers another, so the loop runs until the state is stable. An error in one pass is logged
    and the loop goes on, as a controller must.
    """
    store = cluster.store
    watch = store.watch(None, None, store.resource_version)
    batch: list[WatchEvent] = []
    try:
        while True:
            try:
                reconcile(batch)
            except Exception:
                log.exception("%s: reconcile failed; retrying on the next change", name)
            batch = []
            while not batch:
                try:
                    first = await asyncio.wait_for(watch.queue.get(), resync)
                except TimeoutError:
                    break
                batch = [first]
                while not watch.queue.empty():
                    batch.append(watch.queue.get_nowait())
                if keys is not None:
                    batch = [event for event in batch if event.key in keys]
    except asyncio.CancelledError:
        store.stop_watch(watch)
        raise


def owner_reference(owner: Obj) -> Obj:
    """metav1.NewControllerRef: the reference that makes `owner` a child's controller (and its garbage collector's
    reason to delete the child with it)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def replace_object(cluster: Cluster, resource_type: ResourceType, obj: Obj, agent: str) -> Obj | None:
    """PUT `obj` as `agent`: the stored object, or None when refused (logged; the next pass tries again)."""
    metadata = obj["metadata"]
    try:
        return cluster.replace(resource_type, "v1", metadata["namespace"], metadata["name"], obj, user_agent=agent).obj
    except ApiError as exc:
        log.info("%s: %s %s not updated: %s", agent, resource_type.kind, metadata["name"], exc.message)
        return None


def write_status(cluster: Cluster, resource_type: ResourceType, obj: Obj, status: Obj, agent: str) -> None:
    """PUT `status` on `obj`'s /status subresource as `agent`, unless it is what is stored already.

    A refusal (a newer resourceVersion, the object gone) is only logged: the change that caused it
    starts another pass, which computes the status afresh.
    """
    if obj.get("status") == status:
        return
    metadata = obj["metadata"]
    try:
        cluster.replace(
            resource_type,
            "v1",
            metadata["namespace"],
            metadata["name"],
            {**obj, "status": status},  # /status takes only the status; the rest is read back from the store
            subresource="status",
            user_agent=agent,
        )
    except ApiError as exc:
        log.info("%s: status of %s not written: %s", agent, metadata["name"], exc.message)
