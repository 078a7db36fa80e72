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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest

from localcluster.network.mesh.authorization import principal_of
from localcluster.network.mesh.config import MeshPod
from localcluster.network.mesh.hosts import service_fqdn
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

#: A route label (beside Istio's) naming the stats of the proxy the request left from: the calling
#: pod's sidecar (`namespace/pod`) or the ingress gateway; "" when the caller has no sidecar.
SOURCE_PROXY = "mesh.source_proxy"


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
    """Every proxy's stats, fed by the service proxy's exchanges (`observe` it).

    The source side comes from the route's labels (the calling sidecar or the gateway, and the
    Service addressed); the destination side from the pod at each attempt's address.
    """

    def __init__(self, pods: Callable[[str], MeshPod | None]) -> None:
        self._pod_at = pods
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
        source = labels.get(SOURCE_PROXY, "")
        common = {name: labels.get(name, UNKNOWN) for name in LABELS}
        common.update(source_cluster=CLUSTER, destination_cluster=CLUSTER, request_protocol="http")
        if exchange.destination is not None and "destination_service" not in labels:
            common.update(_service_labels(exchange.destination.via))
        if source:
            last = exchange.tries[-1].destination if exchange.tries else exchange.destination
            seen = {
                **common,
                **_destination_labels(self._pod_at(last.host) if last else None),
                "reporter": "source",
                "response_code": str(exchange.status),
                "response_flags": _flags(exchange.flags),
            }
            self.stats(source).record(seen, exchange.duration, exchange.request_bytes, exchange.response_bytes)
        for attempt in exchange.tries:
            pod = self._pod_at(attempt.destination.host)
            if pod is None or not pod.sidecar:
                continue
            served = {
                **common,
                **_destination_labels(pod),
                "reporter": "destination",
                "response_code": str(attempt.status),
                "response_flags": _flags(attempt.flags),
                "connection_security_policy": "mutual_tls" if source else "none",
            }
            self.stats(f"{pod.namespace}/{pod.name}").record(
                served, attempt.duration, exchange.request_bytes, exchange.response_bytes
            )


def _flags(flags: frozenset[str]) -> str:
    return ",".join(sorted(flag for flag in flags if flag)) or "-"


def _service_labels(via: str) -> dict[str, str]:
    if "/" not in via:
        return {}
    namespace, name = via.split("/", 1)
    return {
        "destination_service": service_fqdn(namespace, name),
        "destination_service_name": name,
        "destination_service_namespace": namespace,
    }


def _destination_labels(pod: MeshPod | None) -> dict[str, str]:
    if pod is None:
        return {}
    return {
        "destination_workload": pod.workload,
        "destination_workload_namespace": pod.namespace,
        "destination_principal": f"spiffe://{principal_of(pod.namespace, pod.service_account)}"
        if pod.sidecar
        else UNKNOWN,
        "destination_app": pod.app,
        "destination_version": pod.version,
        "destination_canonical_service": pod.app,
        "destination_canonical_revision": pod.version,
    }
