"""The service mesh from a notebook: calls through the ingress gateway, the sidecars' metrics, a live chart.

A notebook's kernel is outside the mesh (on a real cluster it runs in a JupyterLab pod without a
sidecar), so calling `http://storefront` gets plain Service routing: Istio applies VirtualServices on
the caller's side. Visitors come in through the ingress gateway instead, and so does
`through_gateway`: `http://istio-ingressgateway.istio-system` with the Host of the service asked for.

`watch_traffic` sends visitors for a while and charts live (labkit.charts.LiveChart) what each
version serves. Metrics are read where Prometheus reads them: each injected pod announces its sidecar's endpoint in
its `prometheus.io/port` and `prometheus.io/path` annotations (15020, /stats/prometheus), and
`scrape` reads those of the namespace's pods, with Istio's metric and label names, on localcluster and
on a cluster with Istio alike.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from labkit._default import resolve
from labkit.charts import LiveChart

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["INGRESS", "Sample", "requests_by", "scrape", "service_host", "through_gateway", "watch_traffic"]

#: Istio's ingress gateway Service (the default profile installs it in istio-system).
INGRESS = "http://istio-ingressgateway.istio-system"
SIDECAR_STATUS = "sidecar.istio.io/status"
REQUESTS_TOTAL = "istio_requests_total"


def service_host(name: str, *, connection: Context | None = None) -> str:
    """The fully qualified name of a Service of your namespace, the Host a gateway routes by."""
    return f"{name}.{resolve(connection).namespace}.svc.cluster.local"


def through_gateway(
    method: str,
    path: str = "/",
    *,
    service: str = "storefront",
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    connection: Context | None = None,
) -> httpx.Response:
    """`method path` as a visitor sends it: to the ingress gateway, for the Service's host."""
    ctx = resolve(connection)
    sent = {"host": service_host(service, connection=ctx), **(headers or {})}
    return ctx.http.request(method, f"{INGRESS}{path}", headers=sent, json=json)


@dataclass(frozen=True)
class Sample:
    """One Prometheus sample of one sidecar: the pod it came from, the metric's name, labels and value."""

    pod: str
    name: str
    labels: Mapping[str, str]
    value: float


def scrape(*, label_selector: str = "", connection: Context | None = None) -> list[Sample]:
    """The Istio samples of every injected pod of your namespace (that matches `label_selector`)."""
    ctx = resolve(connection)
    listed = ctx.core.list_namespaced_pod(ctx.namespace, label_selector=label_selector)
    samples: list[Sample] = []
    for pod in ctx.core.api_client.sanitize_for_serialization(listed)["items"]:
        annotations = pod["metadata"].get("annotations") or {}
        address = (pod.get("status") or {}).get("podIP")
        if SIDECAR_STATUS not in annotations or annotations.get("prometheus.io/scrape") != "true" or not address:
            continue
        port = annotations.get("prometheus.io/port", "15020")
        path = annotations.get("prometheus.io/path", "/stats/prometheus")
        try:
            answer = ctx.http.get(f"http://{address}:{port}{path}")
        except httpx.TransportError:
            continue  # a pod going away between the list and the scrape
        if answer.status_code != 200:
            continue
        for family in text_string_to_metric_families(answer.text):
            samples.extend(
                Sample(pod["metadata"]["name"], sample.name, dict(sample.labels), sample.value)
                for sample in family.samples
                if sample.name.startswith("istio_")
            )
    return samples


def requests_by(samples: Iterable[Sample], label: str, *, reporter: str = "destination", **labels: str) -> Counter[str]:
    """istio_requests_total summed by one label (e.g. destination_version), over samples matching `labels`."""
    found: Counter[str] = Counter()
    for sample in samples:
        if sample.name != REQUESTS_TOTAL or sample.labels.get("reporter") != reporter:
            continue
        if all(sample.labels.get(key) == value for key, value in labels.items()):
            found[sample.labels.get(label, "unknown")] += int(sample.value)
    return found


def watch_traffic(
    seconds: float = 10.0,
    *,
    service: str = "storefront",
    versions: Sequence[str] = ("v1", "v2"),
    visitors_per_second: float = 20.0,
    path: str = "/api/books",
    every: float = 1.0,
    connection: Context | None = None,
) -> Counter[str]:
    """Send visitors through the gateway for `seconds` with a live chart of the requests per second each
    version of `service` serves, as its sidecars' metrics count them; returns who answered the visitors."""
    ctx = resolve(connection)
    chart = LiveChart(f"{service}: requests served per version", list(versions), ylabel="requests per second")
    answered: Counter[str] = Counter()
    stop = threading.Event()

    def visit() -> None:
        pause = 1 / visitors_per_second
        while not stop.wait(pause):
            try:
                answer = through_gateway("GET", path, service=service, connection=ctx)
            except httpx.TransportError:
                answered["no answer"] += 1
                continue
            answered[answer.headers.get("x-bookstore-version") or str(answer.status_code)] += 1

    def served() -> Counter[str]:
        samples = scrape(label_selector=f"app={service}", connection=ctx)
        return requests_by(samples, "destination_version", destination_service_name=service)

    visitor = threading.Thread(target=visit, name="mesh-visitors", daemon=True)
    started = last_at = time.monotonic()
    last = served()
    visitor.start()
    try:
        while (now := time.monotonic()) - started < seconds:
            stop.wait(every)
            now, seen = time.monotonic(), served()
            span = max(now - last_at, 1e-6)
            chart.add(now - started, **{v: max(0, seen[v] - last[v]) / span for v in versions})
            last_at, last = now, seen
    finally:
        stop.set()
        visitor.join()
        chart.close()
    return answered
