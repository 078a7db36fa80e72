"""The service network: one HTTP proxy on loopback through which pods and clients reach Services.

`ServiceProxy.for_store(store)` is what localcluster runs; its `RoutingTable` takes more resolvers
(Knative routes, Istio VirtualServices) in front of the Service resolver. A resolver answers with a
`Destination` or a `Route` carrying a `Policy` (retries, timeouts, faults, rewrites, mirrors), and
`ServiceProxy.observe` hands every finished request's `Exchange` to telemetry.
"""

from localcluster.network.callers import PodAddresses
from localcluster.network.hostnames import PodHostnameResolver
from localcluster.network.kubeproxy import ServiceRules
from localcluster.network.proxy import ProxyLimits, ServiceProxy
from localcluster.network.routing import (
    DEFAULT_NAMESPACE,
    NAMESPACE_HEADER,
    NO_LABELS,
    NO_POLICY,
    Caller,
    Destination,
    DirectResponse,
    Exchange,
    Fault,
    HeaderOperations,
    LoopbackResolver,
    Policy,
    ProxyError,
    Resolver,
    Retries,
    Route,
    RouteRequest,
    RoutingTable,
)
from localcluster.network.services import ClusterIPResolver, ServiceResolver, service_of_host

__all__ = [
    "DEFAULT_NAMESPACE",
    "NAMESPACE_HEADER",
    "NO_LABELS",
    "NO_POLICY",
    "Caller",
    "ClusterIPResolver",
    "Destination",
    "DirectResponse",
    "Exchange",
    "Fault",
    "HeaderOperations",
    "LoopbackResolver",
    "PodAddresses",
    "PodHostnameResolver",
    "Policy",
    "ProxyError",
    "ProxyLimits",
    "Resolver",
    "Retries",
    "Route",
    "RouteRequest",
    "RoutingTable",
    "ServiceProxy",
    "ServiceResolver",
    "ServiceRules",
    "service_of_host",
]
