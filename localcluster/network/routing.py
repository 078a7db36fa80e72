"""The routing table: a request's host, port and caller become a route, or a reason why not.

Resolvers are consulted in order; the first that recognises the host decides. kube-proxy's Service
routing is one resolver; Knative routes and Istio VirtualServices are added in front of it, so every
kind of routing shares one lookup step and one error shape.

A resolver answers with a `Destination` (one backend: plain Service routing) or a `Route`: a way to
choose a backend for each attempt plus the `Policy` around the request (what an Istio HTTP route
says: timeout, retries, faults, rewrites, header edits, mirroring, direct answers). The proxy
carries out every policy in one place, so labs 04 and 05 add resolvers, never proxy code.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

#: The header a client outside any pod sets to say which namespace its short names live in
#: (labkit sets it from its connection's namespace). The proxy removes it before forwarding.
NAMESPACE_HEADER = "x-localcluster-namespace"

#: Where short names resolve when neither the caller's pod nor the header says otherwise.
DEFAULT_NAMESPACE = "bookstore"


#: An empty, read-only mapping: the default labels of routes and destinations.
NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Caller:
    """The pod a request comes from, known by the connection's source address (pods own theirs).

    Mesh routing applies to callers whose pod has a sidecar (see `annotations`), and the caller's
    ServiceAccount is its identity for authorization, as Istio's mTLS certificates make it.
    """

    namespace: str
    pod: str
    service_account: str
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)
    annotations: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)

    @property
    def principal(self) -> str:
        """The caller's SPIFFE-style identity, as Istio's `source.principal` spells it."""
        return f"cluster.local/ns/{self.namespace}/sa/{self.service_account}"


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
    #: Header names in lower case, values as sent.
    headers: tuple[tuple[str, str], ...] = ()
    #: The calling pod, or None for a client outside the cluster (a notebook, a terminal).
    caller: Caller | None = None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), or None."""
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True)
class Destination:
    """One attempt's backend, and what it stands for (for errors, logs and metrics)."""

    host: str
    port: int
    #: `namespace/name` of the Service (or route) the request was addressed to, if any.
    via: str = ""
    #: What the backend is, for telemetry: e.g. destination_workload, destination_version, revision.
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)
    #: Called exactly once when the attempt to this backend ends, however it ends: a lease, so a
    #: resolver can count the requests in flight per backend (Knative's concurrency per revision).
    done: Callable[[], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Retries:
    """Istio's HTTPRetry as Envoy applies it: `attempts` retries after the first try."""

    attempts: int
    #: Seconds each try may take (None: only the route's timeout bounds it).
    per_try_timeout: float | None = None
    #: Envoy's retry_on conditions: 5xx, gateway-error, reset, connect-failure, retriable-4xx,
    #: retriable-status-codes (gRPC ones such as `unavailable` never match plain HTTP). The default
    #: is Istio's own retry policy.
    retry_on: frozenset[str] = frozenset(
        {"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
    )
    #: Status codes retried under `retriable-status-codes` (Istio turns numbers in retryOn into these;
    #: its default policy names the condition with no codes, so by default no status is retried).
    retriable_status_codes: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Fault:
    """Istio's HTTPFaultInjection: a delay and/or an abort, each applied to a percentage of requests."""

    delay: float = 0.0
    delay_percent: float = 0.0
    abort_status: int | None = None
    abort_percent: float = 0.0


@dataclass(frozen=True)
class HeaderOperations:
    """Istio's Headers.HeaderOperations: names in lower case; `set` replaces, `add` appends."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True)
class DirectResponse:
    """An answer the proxy gives itself (an HTTPRedirect or HTTPDirectResponse): nothing is forwarded."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Policy:
    """What happens around a routed request, in Envoy's order: direct answer, fault, then attempts."""

    #: Seconds for the whole exchange, retries included (Envoy answers 504 `upstream request timeout`).
    timeout: float | None = None
    retries: Retries | None = None
    fault: Fault | None = None
    #: The path (with query) sent upstream instead of the request's (a uri rewrite).
    path: str | None = None
    #: The Host sent upstream instead of the request's (an authority rewrite).
    authority: str | None = None
    request_headers: HeaderOperations = HeaderOperations()
    response_headers: HeaderOperations = HeaderOperations()
    #: A copy of each request (for `mirror_percent` of them) goes there too; its answer is dropped.
    mirror: Route | None = None
    mirror_percent: float = 100.0
    direct: DirectResponse | None = None
    #: Answer failures as an Envoy sidecar does (its plain-text bodies, e.g. `no healthy upstream`)
    #: instead of the proxy's JSON reasons: mesh routes say True.
    envoy_answers: bool = False


#: No policy: plain Service routing.
NO_POLICY = Policy()


@dataclass(frozen=True)
class Route:
    """A routed request: how to choose a backend for each attempt, and the policy around them."""

    #: Awaited once per attempt (a retry chooses again). It may wait, as Knative's activator holds a
    #: request while its revision scales from zero, or raise ProxyError (no healthy backend).
    choose: Callable[[], Awaitable[Destination]]
    policy: Policy = NO_POLICY
    #: What the request was addressed to, for telemetry: e.g. destination_service.
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)

    @classmethod
    def to(cls, destination: Destination) -> Route:
        """The route of a resolver that answered with one backend: every attempt goes there."""

        async def same() -> Destination:
            return destination

        return cls(same, labels=destination.labels)


class ProxyError(Exception):
    """Why the proxy cannot deliver a request, answered to the client as `status` with a reason.

    Resolvers raise it for hosts they recognise but cannot route (503: no such Service, no Ready
    endpoint); the proxy raises it for bad requests (400) and unreachable backends (502, 504).
    With `text`, the answer is exactly that body as text/plain (an Envoy sidecar's own answers,
    such as `RBAC: access denied`); `flag` is the Envoy response flag telemetry records (UH, NR...).
    """

    def __init__(
        self, reason: str, message: str, *, status: int = 503, text: str | None = None, flag: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.text = text
        self.flag = flag


class Resolver(Protocol):
    """One kind of routing. Returns None for hosts it does not handle, so the next resolver is asked."""

    async def resolve(self, request: RouteRequest) -> Destination | Route | None: ...


@dataclass(frozen=True)
class Try:
    """One attempt of an exchange that reached a destination, as the destination's sidecar reports it."""

    destination: Destination
    #: The backend's status, 0 if it gave none (connection failure, reset, timeout).
    status: int
    duration: float
    #: Envoy response flags of this attempt (UF, UC, UT, or those of an inbound refusal such as RBAC).
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Exchange:
    """One request as the proxy saw it, handed to telemetry observers when it is over."""

    request: RouteRequest
    #: The route's labels merged with the last attempt's destination's.
    labels: Mapping[str, str]
    #: The last attempt's backend, None if no attempt was made (fault abort, no route, refused).
    destination: Destination | None
    #: The status the client got (0 if the connection was cut before an answer).
    status: int
    #: Wall-clock time the request arrived (time.time()) and seconds until its answer was complete.
    started: float
    duration: float
    #: Attempts made upstream: 1 + retries (0 when none was made).
    attempts: int
    #: Envoy response flags: UH no healthy upstream, UF connect failure, UT timeout, URX retries
    #: exhausted, UC upstream closed, NR no route, FI/DI fault abort/delay, RBAC denied, DC client gone.
    flags: frozenset[str]
    request_bytes: int = 0
    response_bytes: int = 0
    #: Every attempt that got a destination, in order (Istio's reporter="destination" samples).
    tries: tuple[Try, ...] = ()


#: A check at the destination's side of every attempt, whatever routed it (an Istio sidecar's
#: inbound filters: AuthorizationPolicy). It raises ProxyError to refuse the attempt.
InboundStep = Callable[[RouteRequest, Destination], None]


class RoutingTable:
    """Resolvers in priority order; the first that answers for a host decides.

    Inbound steps run for every attempt once its destination is chosen, in the order added, so a
    rule of the destination's (a sidecar's authorization) holds for every kind of routing.
    """

    def __init__(self, resolvers: Iterable[Resolver] = ()) -> None:
        self._resolvers = list(resolvers)
        self.inbound: list[InboundStep] = []

    def add_inbound(self, step: InboundStep) -> None:
        """Run `step(request, destination)` before every attempt to a destination (see InboundStep)."""
        self.inbound.append(step)

    def add(self, resolver: Resolver, *, first: bool = False) -> None:
        """Add a resolver after the others, or (first=True) in front of them, as mesh routing must be."""
        if first:
            self._resolvers.insert(0, resolver)
        else:
            self._resolvers.append(resolver)

    async def resolve(self, request: RouteRequest) -> Route:
        for resolver in self._resolvers:
            answer = await resolver.resolve(request)
            if isinstance(answer, Destination):
                return Route.to(answer)
            if answer is not None:
                return answer
        raise ProxyError(
            "UnknownHost",
            f"{request.host!r} is not a cluster name: use a Service's name (`stock`, `stock.bookstore`, "
            "`stock.bookstore.svc.cluster.local`) or a pod's IP address",
        )


class LoopbackResolver:
    """Pod IP addresses go straight there; `localhost` means the calling pod itself.

    A pod's servers listen on its own loopback address, so a pod that reaches `localhost` through
    the proxy means its own address, which is the address it connects from. For a client that is
    not a pod, `localhost` would be the machine itself: refused, as is any address that is not a
    pod's (the proxy checks every destination, whoever chose it).
    """

    async def resolve(self, request: RouteRequest) -> Destination | None:
        if request.host == "localhost":
            if request.caller is None:
                raise ProxyError(
                    "OutsideCluster",
                    "`localhost` through the service proxy means the calling pod, and this client is not a pod: "
                    "use a Service's name (http://stock/) or a pod's IP address",
                    status=403,
                )
            return Destination(request.client, request.port)
        try:
            address = ipaddress.ip_address(request.host)
        except ValueError:
            return None
        return Destination(str(address), request.port)
