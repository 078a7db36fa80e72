"""What every in-process controller shares: a watch-driven loop that reconciles after changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from localcluster.api.cluster import Cluster
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.controllers")


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
