"""Lab 04's live chart: the storefront's Ready pods and the requests in flight, second by second.

    watch_scaling(load_seconds=15, calm_seconds=20)

A load of GETs starts (``RequestLoad``, ``concurrency`` threads), and a :class:`labkit.charts.LiveChart`
redraws each second: how many requests wait for an answer (what Knative's autoscaler measures) and
how many storefront pods are Ready. After ``load_seconds`` the load stops and the chart goes on for
``calm_seconds``, so the pods are seen coming and going again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from checkers.lab04_serverless import SERVICE, RequestLoad, look_at_storefront
from labkit._default import resolve
from labkit.charts import LiveChart

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["watch_scaling"]

PODS = "Ready pods"
IN_FLIGHT = "requests in flight"


def ready_pods(ctx: Context) -> int:
    """The storefront's Ready pods, all revisions together."""
    pods = ctx.core.list_namespaced_pod(ctx.namespace, label_selector=f"serving.knative.dev/service={SERVICE}").items
    ready = 0
    for pod in pods:
        conditions = (pod.status.conditions if pod.status else None) or []
        deleting = pod.metadata is not None and pod.metadata.deletion_timestamp is not None
        ready += int(not deleting and any(c.type == "Ready" and c.status == "True" for c in conditions))
    return ready


def watch_scaling(
    *,
    load_seconds: float = 15,
    calm_seconds: float = 20,
    concurrency: int = 8,
    every: float = 1.0,
    connection: Context | None = None,
) -> list[tuple[float, int, int]]:
    """Load the storefront, then let it calm down, charting pods and requests in flight; the points seen."""
    ctx = resolve(connection)
    url = look_at_storefront(ctx).url
    chart = LiveChart("The storefront under load", [IN_FLIGHT, PODS], ylabel="count")
    load: RequestLoad | None = RequestLoad(ctx.http, url, concurrency=concurrency).start()
    points: list[tuple[float, int, int]] = []
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < load_seconds + calm_seconds:
            if load is not None and elapsed >= load_seconds:
                answered = load.stop()
                print(f"load stopped after {elapsed:.0f} s: answers by status {dict(answered)}")
                load = None
            pods, in_flight = ready_pods(ctx), load.in_flight if load is not None else 0
            chart.add(elapsed, **{IN_FLIGHT: in_flight, PODS: pods})
            points.append((elapsed, in_flight, pods))
            time.sleep(max(0.0, every - (time.monotonic() - started - elapsed)))
    finally:
        if load is not None:
            load.stop()
        chart.close()
    return points
