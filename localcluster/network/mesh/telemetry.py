"""Istio's standard metrics, kept per proxy from the service proxy's `Exchange` records.

Each sidecar reports what it saw: the caller's as `reporter="source"` (one sample per request, the
answer the caller got) and the destination's as `reporter="destination"` (the answer it served).
Istio's metric and label names are kept (`istio_requests_total`, `istio_request_duration_milliseconds`,
`istio_request_bytes`, `istio_response_bytes`; `destination_version`, `response_flags`, ...), and
each pod's samples are served where a real sidecar serves them, `http://<pod IP>:15020/stats/prometheus`
(the port and path the injector's `prometheus.io/*` annotations announce), so the same scrape reads
them on localcluster and on a cluster with Istio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest

from localcluster.network.routing import Exchange

# Envoy's Prometheus output has no `_created` series.
disable_created_metrics()

#: Istio's standard labels, in its order.
LABELS = (
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
#: Istio's default duration buckets (milliseconds).
DURATION_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000)
SIZE_BUCKETS = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000)
UNKNOWN = "unknown"
CLUSTER = "Kubernetes"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Route/destination label keys (beside Istio's) that tell telemetry who reports: the pod keys of the
#: source's and destination's sidecars ("" when that side has none).
SOURCE_PROXY = "mesh.source_proxy"
DESTINATION_PROXY = "mesh.destination_proxy"


@dataclass
class ProxyStats:
    """One proxy's metrics (a sidecar's or the ingress gateway's)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("istio_requests", "Total requests.", LABELS, registry=self.registry)
        self.duration = Histogram(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds.",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.request_bytes = Histogram(
            "istio_request_bytes", "Request body sizes.", LABELS, buckets=SIZE_BUCKETS, registry=self.registry
        )
        self.response_bytes = Histogram(
            "istio_response_bytes", "Response body sizes.", LABELS, buckets=SIZE_BUCKETS, registry=self.registry
        )

    def record(self, labels: Mapping[str, str], duration: float, request_bytes: int, response_bytes: int) -> None:
        values = [labels.get(name) or UNKNOWN for name in LABELS]
        self.requests.labels(*values).inc()
        self.duration.labels(*values).observe(duration * 1000)
        self.request_bytes.labels(*values).observe(request_bytes)
        self.response_bytes.labels(*values).observe(response_bytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MeshTelemetry:
    """Every proxy's stats, fed by the service proxy's exchanges (`observe` it)."""

    def __init__(self) -> None:
        self._proxies: dict[str, ProxyStats] = {}

    def stats(self, proxy: str) -> ProxyStats:
        """The stats of one proxy (`namespace/pod`, or the gateway's key), created on first use."""
        stats = self._proxies.get(proxy)
        if stats is None:
            stats = self._proxies[proxy] = ProxyStats()
        return stats

    def forget(self, proxy: str) -> None:
        """Drop a proxy's stats (its pod is gone, as its Envoy's counters go with it)."""
        self._proxies.pop(proxy, None)

    def render(self, proxy: str) -> bytes:
        return self.stats(proxy).render()

    def __call__(self, exchange: Exchange) -> None:
        labels = exchange.labels
        source, destination = labels.get(SOURCE_PROXY, ""), labels.get(DESTINATION_PROXY, "")
        if not source and not destination:
            return  # plain traffic between pods without sidecars: no proxy saw it
        common = {
            **{name: labels.get(name, UNKNOWN) for name in LABELS},
            "source_cluster": CLUSTER,
            "destination_cluster": CLUSTER,
            "request_protocol": "http",
            "response_code": str(exchange.status),
            "response_flags": ",".join(sorted(exchange.flags)) or "-",
        }
        sizes = (exchange.duration, exchange.request_bytes, exchange.response_bytes)
        if source:
            self.stats(source).record({**common, "reporter": "source"}, *sizes)
        if destination and exchange.destination is not None:
            secured = "mutual_tls" if source else "none"
            served = {**common, "reporter": "destination", "connection_security_policy": secured}
            # One sample for the attempt that answered; earlier attempts of a retried request need the
            # proxy's per-attempt record (requested of the network pipeline).
            self.stats(destination).record(served, *sizes)
