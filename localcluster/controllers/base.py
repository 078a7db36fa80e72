"""What every in-process controller shares: a watch-driven loop that reconciles after changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from localcluster.api.cluster import Cluster
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.controllers")


async def reconcile_on_changes(
    cluster: Cluster,
    name: str,
    reconcile: Callable[[list[WatchEvent]], None],
    *,
    key: str | None = None,
) -> None:
    """Call `reconcile` once at start and then after each batch of changes to `key` (None: any kind).

    Batching the queued events makes a burst of writes cost one pass, and a pass that writes
    triggers another, so the loop runs until the state is stable. An error in one pass is logged
    and the loop goes on, as a controller must.
    """
    store = cluster.store
    watch = store.watch(key, None, store.resource_version)
    batch: list[WatchEvent] = []
    try:
        while True:
            try:
                reconcile(batch)
            except Exception:
                log.exception("%s: reconcile failed; retrying on the next change", name)
            batch = [await watch.queue.get()]
            while not watch.queue.empty():
                batch.append(watch.queue.get_nowait())
    except asyncio.CancelledError:
        store.stop_watch(watch)
        raise
