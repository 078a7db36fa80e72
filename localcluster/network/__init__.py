"""The service network: one HTTP proxy on loopback through which pods and clients reach Services.

`ServiceProxy.for_store(store)` is what localcluster runs; its `RoutingTable` takes more resolvers
(Knative routes, Istio VirtualServices) in front of the Service resolver.
"""

from localcluster.network.callers import PodAddresses
from localcluster.network.proxy import ServiceProxy
from localcluster.network.routing import (
    DEFAULT_NAMESPACE,
    NAMESPACE_HEADER,
    Destination,
    LoopbackResolver,
    ProxyError,
    Resolver,
    RouteRequest,
    RoutingTable,
)
from localcluster.network.services import ServiceResolver, service_of_host

__all__ = [
    "DEFAULT_NAMESPACE",
    "NAMESPACE_HEADER",
    "Destination",
    "LoopbackResolver",
    "PodAddresses",
    "ProxyError",
    "Resolver",
    "RouteRequest",
    "RoutingTable",
    "ServiceProxy",
    "ServiceResolver",
    "service_of_host",
]
