"""The service mesh from a notebook: calls through the ingress gateway, the sidecars' metrics, a live chart.

A notebook's kernel is outside the mesh (on a real cluster it runs in a JupyterLab pod without a
sidecar), so calling `http://storefront` gets plain Service routing: Istio applies VirtualServices on
the caller's side. Visitors come in through the ingress gateway instead, and so does
`through_gateway`: `http://istio-ingressgateway.istio-system` with the Host of the service asked for.

Metrics are read where Prometheus reads them: each injected pod announces its sidecar's endpoint in
its `prometheus.io/port` and `prometheus.io/path` annotations (15020, /stats/prometheus), and
`scrape` reads those of the namespace's pods, with Istio's metric and label names, on localcluster and
on a cluster with Istio alike.
"""

from __future__ import annotations

import html
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from labkit._default import resolve

if TYPE_CHECKING:
    import ipywidgets

    from checkers import Context

__all__ = [
    "INGRESS",
    "Sample",
    "TrafficChart",
    "requests_by",
    "scrape",
    "service_host",
    "through_gateway",
    "traffic_chart",
]

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


class TrafficChart:
    """Requests per second to each version of a service, from its sidecars' metrics, refreshed live."""

    def __init__(self, ctx: Context, service: str, interval: float, window: int) -> None:
        self._ctx = ctx
        self._service = service
        self._interval = interval
        self._history: deque[tuple[float, Counter[str]]] = deque(maxlen=window + 1)
        self._stopped = threading.Event()
        self._widget: ipywidgets.HTML | None = None
        self._thread: threading.Thread | None = None

    def measure(self) -> dict[str, float]:
        """Read the metrics once more; requests per second per version over the chart's window."""
        samples = scrape(label_selector=f"app={self._service}", connection=self._ctx)
        counts = requests_by(samples, "destination_version", destination_service_name=self._service)
        self._history.append((time.monotonic(), counts))
        (start, first), (end, last) = self._history[0], self._history[-1]
        elapsed = end - start
        if elapsed <= 0:
            return {version: 0.0 for version in last}
        return {version: max(0.0, last[version] - first[version]) / elapsed for version in sorted(last)}

    def _render(self, rates: dict[str, float]) -> str:
        total = sum(rates.values())
        rows = []
        for version, rate in rates.items():
            share = rate / total if total else 0.0
            bar = f"<div style='background:#4a90d9;height:14px;width:{share * 300:.0f}px'></div>"
            rows.append(
                f"<tr><td>{html.escape(version)}</td><td>{bar}</td><td>{rate:.1f}/s</td><td>{share:.0%}</td></tr>"
            )
        body = "".join(rows) or "<tr><td colspan=4><i>no requests yet</i></td></tr>"
        return f"<div><b>{html.escape(self._service)}: requests per version</b><table>{body}</table></div>"

    def __str__(self) -> str:
        rates = self.measure()
        total = sum(rates.values())
        lines = [f"{self._service}: requests per version"]
        lines += [f"  {v}: {r:.1f}/s ({r / total if total else 0:.0%})" for v, r in rates.items()]
        return "\n".join(lines)

    def _refresh_until_stopped(self) -> None:
        assert self._widget is not None
        while not self._stopped.wait(self._interval):
            try:
                self._widget.value = self._render(self.measure())
            except Exception as exc:  # the chart must keep showing something while the cluster is away
                self._widget.value = f"<i>cannot read the metrics: {html.escape(str(exc))}</i>"

    def widget(self) -> ipywidgets.HTML:
        """The widget; the first call starts the refreshing thread."""
        import ipywidgets

        if self._widget is None:
            self._widget = ipywidgets.HTML(self._render(self.measure()))
            self._thread = threading.Thread(target=self._refresh_until_stopped, name="traffic-chart", daemon=True)
            self._thread.start()
        return self._widget

    def stop(self) -> None:
        """Stop refreshing (the widget keeps its last picture)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from labkit._panel import WIDGET_MIMETYPE, _in_kernel

        bundle: dict[str, Any] = {"text/plain": str(self)}
        if _in_kernel():
            bundle[WIDGET_MIMETYPE] = self.widget()._repr_mimebundle_()[WIDGET_MIMETYPE]
        return bundle


def traffic_chart(
    service: str = "storefront", *, interval: float = 1.0, window: int = 10, connection: Context | None = None
) -> TrafficChart:
    """A live chart of the requests each version of `service` serves (display it in a cell; `.stop()` it)."""
    return TrafficChart(resolve(connection), service, interval, window)
