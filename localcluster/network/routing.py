"""The routing table: a request's host, port and caller become a destination, or a reason why not.

Resolvers are consulted in order; the first that recognises the host decides. kube-proxy's Service
routing is one resolver; Knative routes and Istio VirtualServices are added in front of it later,
so every kind of routing shares one lookup step and one error shape.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

#: The header a client outside any pod sets to say which namespace its short names live in
#: (labkit sets it from its connection's namespace). The proxy removes it before forwarding.
NAMESPACE_HEADER = "x-localcluster-namespace"

#: Where short names resolve when neither the caller's pod nor the header says otherwise.
DEFAULT_NAMESPACE = "bookstore"


@dataclass(frozen=True)
class RouteRequest:
    """What routing may look at: the addressed host and port, the caller, and the request line."""

    host: str
    port: int
    #: The namespace short names resolve in: the calling pod's, else the header's, else the default.
    namespace: str
    #: The caller's IP address (a pod's own loopback address when a pod calls).
    client: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Destination:
    """Where to send the request, and what it stands for (for errors, logs and metrics)."""

    host: str
    port: int
    #: `namespace/name` of the Service (or route) the request was addressed to, if any.
    via: str = ""


class ProxyError(Exception):
    """Why the proxy cannot deliver a request, answered to the client as `status` with a reason.

    Resolvers raise it for hosts they recognise but cannot route (503: no such Service, no Ready
    endpoint); the proxy raises it for bad requests (400) and unreachable backends (502, 504).
    """

    def __init__(self, reason: str, message: str, *, status: int = 503) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


class Resolver(Protocol):
    """One kind of routing. Returns None for hosts it does not handle, so the next resolver is asked."""

    async def resolve(self, request: RouteRequest) -> Destination | None: ...


class RoutingTable:
    """Resolvers in priority order; the first that answers for a host decides."""

    def __init__(self, resolvers: Iterable[Resolver] = ()) -> None:
        self._resolvers = list(resolvers)

    def add(self, resolver: Resolver, *, first: bool = False) -> None:
        """Add a resolver after the others, or (first=True) in front of them, as mesh routing must be."""
        if first:
            self._resolvers.insert(0, resolver)
        else:
            self._resolvers.append(resolver)

    async def resolve(self, request: RouteRequest) -> Destination:
        for resolver in self._resolvers:
            destination = await resolver.resolve(request)
            if destination is not None:
                return destination
        raise ProxyError(
            "UnknownHost",
            f"{request.host!r} is not a cluster name: use a Service's name (`stock`, `stock.bookstore`, "
            "`stock.bookstore.svc.cluster.local`) or a pod's IP address",
        )


class LoopbackResolver:
    """Loopback IP addresses (pod IPs) go straight there; `localhost` means the caller itself.

    A pod's servers listen on its own loopback address, so a pod that reaches `localhost` through
    the proxy means its own address, which is the address it connects from.
    """

    async def resolve(self, request: RouteRequest) -> Destination | None:
        if request.host == "localhost":
            return Destination(request.client, request.port)
        try:
            address = ipaddress.ip_address(request.host)
        except ValueError:
            return None
        if not address.is_loopback:
            raise ProxyError(
                "OutsideCluster",
                f"{request.host} is outside localcluster: its network is the loopback addresses 127.0.0.0/8 only",
            )
        return Destination(str(address), request.port)
