"""Mesh routing: what the caller's sidecar (or the ingress gateway) and the destination's sidecar do.

The proxy asks this resolver first. It answers for:

- a caller whose pod has a sidecar: its outbound routing. The VirtualService bound to the mesh for
  the addressed host chooses a rule (first match wins) and a destination by weight; with none, the
  Service itself, with Istio's default retries. Destinations are DestinationRule subsets balanced by
  their policy; a subset no DestinationRule defines is Envoy's missing cluster (503, flag NC).
- the ingress gateway (`istio-ingressgateway.istio-system`): the VirtualServices bound to a Gateway
  that selects it, by the request's Host. This is how a client outside the mesh (a notebook) gets
  mesh routing, as on a real cluster: calling a Service directly, it gets plain Service routing,
  since Istio applies VirtualServices on the client side.
- a sidecar's stats endpoint (`http://<pod IP>:15020/stats/prometheus`), answered from telemetry.
- the destination's sidecar: `authorize` applies its AuthorizationPolicies (403 `RBAC: access
  denied`) to every attempt of the routes above, and is the proxy's inbound step for all others.

Everything else is left to the next resolvers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from localcluster.network.mesh import policies
from localcluster.network.mesh.authorization import DENIED_BODY, AuthzRequest, decide, principal_of
from localcluster.network.mesh.config import (
    INGRESS_LABELS,
    INGRESS_NAME,
    INGRESS_NAMESPACE,
    INGRESS_SERVICE_ACCOUNT,
    PODS,
    MeshConfig,
    MeshPod,
)
from localcluster.network.mesh.config import (
    KEYS as WATCHED,
)
from localcluster.network.mesh.destinationrules import DEFAULT_LOAD_BALANCER, Balancer
from localcluster.network.mesh.hosts import service_fqdn, service_of_fqdn
from localcluster.network.mesh.injection import STATS_PATH, STATS_PORT, has_sidecar
from localcluster.network.mesh.telemetry import (
    CONTENT_TYPE,
    SOURCE_PROXY,
    UNKNOWN,
    MeshTelemetry,
)
from localcluster.network.mesh.virtualservices import (
    HttpRoute,
    RequestFacts,
    RequestMatch,
    RouteDestination,
    Workload,
    first_route,
)
from localcluster.network.routing import (
    Destination,
    DirectResponse,
    HeaderOperations,
    Policy,
    ProxyError,
    Route,
    RouteRequest,
)
from localcluster.network.services import ready_addresses, service_of_host, service_port_name
from localcluster.store import Store

log = logging.getLogger("localcluster.mesh")

_SERVICES = "core/services"
_ENDPOINTS = "core/endpoints"
#: The ingress gateway's port for plain HTTP (Istio's default `istio-ingressgateway` Service) and its
#: readiness port, answered as pilot-agent answers `/healthz/ready`.
INGRESS_HTTP_PORT = 80
INGRESS_STATUS_PORT = 15021
INGRESS_PROXY = f"{INGRESS_NAMESPACE}/{INGRESS_NAME}"
#: Envoy retries onto hosts not tried before, drawing up to this many times (pilot's default).
_HOST_SELECTION_ATTEMPTS = 5


@dataclass(frozen=True)
class Source:
    """The proxy a request leaves from, for routing decisions, identity and telemetry."""

    workload: Workload
    #: The key of its stats (`namespace/pod`, or the gateway's); "" for a caller without a sidecar.
    proxy: str
    principal: str | None
    labels: Mapping[str, str]


def _source_labels(pod: MeshPod | None, proxy: str, principal: str | None, namespace: str) -> dict[str, str]:
    """Istio's source_* labels; a caller without a sidecar exchanges no metadata, so all are unknown."""
    if not proxy:
        return {SOURCE_PROXY: ""}
    if pod is None:
        workload, app, version = (INGRESS_NAME, INGRESS_NAME, UNKNOWN) if proxy == INGRESS_PROXY else (UNKNOWN,) * 3
    else:
        workload, app, version = pod.workload, pod.app, pod.version
    return {
        SOURCE_PROXY: proxy,
        "source_workload": workload,
        "source_workload_namespace": namespace,
        "source_principal": f"spiffe://{principal}" if principal else UNKNOWN,
        "source_app": app,
        "source_version": version,
        "source_canonical_service": app,
        "source_canonical_revision": version if version != UNKNOWN else "latest",
    }


def _no_upstream(answer: str) -> Callable[[], Awaitable[Destination]]:
    async def never() -> Destination:
        raise ProxyError("DirectResponse", answer, status=500)

    return never


class MeshResolver:
    """Istio's data plane for localcluster; `follow()` keeps its configuration current."""

    def __init__(self, store: Store, *, rng: random.Random | None = None) -> None:
        self._store = store
        self.config = MeshConfig()
        self.telemetry = MeshTelemetry(self.config.pod_at)
        self._balancers: dict[tuple[str, int, str], Balancer] = {}
        #: Each cluster's Ready members, with the Service, Endpoints and configuration they were read from.
        self._members: dict[tuple[str, int, str], tuple[Any, Any, int, list[tuple[str, int]]]] = {}
        #: Policies built from the compiled rules, by rule and destination (cleared when the configuration changes).
        self._policies: dict[tuple[int, int], tuple[HttpRoute, Policy]] = {}
        self._rng = rng or random.Random()
        version = self.config.load(store)
        self._watches = [store.watch(key, None, version) for key in WATCHED]

    def sync(self) -> None:
        """Apply the mesh objects' and pods' changes since the last request (istiod's push, done lazily:
        each change is compiled once, by the first request after it)."""
        batch = [watch.queue.get_nowait() for watch in self._watches for _ in range(watch.queue.qsize())]
        if not batch:
            return
        self.config.apply(batch)
        self._policies.clear()
        for event in batch:
            if event.key == PODS and event.type == "DELETED":
                metadata = event.entry.obj["metadata"]
                self.telemetry.forget(f"{metadata['namespace']}/{metadata['name']}")

    def close(self) -> None:
        for watch in self._watches:
            self._store.stop_watch(watch)

    # -- the resolver -------------------------------------------------------------------------

    async def resolve(self, request: RouteRequest) -> Route | None:
        self.sync()
        if request.port == STATS_PORT and (pod := self.config.pod_at(request.host)) and pod.sidecar:
            return self._stats(request, f"{pod.namespace}/{pod.name}")
        service = service_of_host(request.host, request.namespace)
        if service == (INGRESS_NAMESPACE, INGRESS_NAME):
            return self._ingress(request)
        source = self._sidecar_of(request)
        if source is not None:
            route = self._outbound(request, service, source)
            if route is not None:
                return route
        return None

    def _sidecar_of(self, request: RouteRequest) -> Source | None:
        caller = request.caller
        pod = self.config.pod_at(request.client)
        if caller is None or not (has_sidecar(caller.annotations) or (pod is not None and pod.sidecar)):
            return None
        principal = principal_of(caller.namespace, caller.service_account)
        proxy = f"{caller.namespace}/{caller.pod}"
        return Source(
            workload=Workload(caller.namespace, caller.labels),
            proxy=proxy,
            principal=principal,
            labels=MappingProxyType(_source_labels(pod, proxy, principal, caller.namespace)),
        )

    def _stats(self, request: RouteRequest, proxy: str) -> Route:
        if request.path.split("?")[0] != STATS_PATH:
            answer = DirectResponse(404, b"", ())
        else:
            answer = DirectResponse(200, self.telemetry.render(proxy), (("content-type", CONTENT_TYPE),))
        return Route(_no_upstream("stats"), Policy(direct=answer, envoy_answers=True))

    def _ingress(self, request: RouteRequest) -> Route:
        """The ingress gateway: Gateways selecting it, then their VirtualServices by Host."""
        if request.port == INGRESS_STATUS_PORT:
            ready = DirectResponse(200, b"", ()) if request.path.startswith("/healthz/ready") else DirectResponse(404)
            return Route(_no_upstream("gateway status"), Policy(direct=ready, envoy_answers=True))
        gateways = [
            g
            for g in self.config.gateways_selecting(INGRESS_LABELS)
            if any(server.port == request.port for server in g.servers)
        ]
        if not gateways:
            raise ProxyError(
                "GatewayNotListening",
                f"the ingress gateway listens on no port {request.port}: no Gateway selects it "
                "(selector istio: ingressgateway) with a server on that port; a real gateway refuses the connection",
                status=502,
                flag="NR",
            )
        host = (request.header("host") or request.host).rsplit(":", 1)[0].lower()
        if host.startswith("[") or host.count(":") > 1:
            host = request.host
        virtual_services = self.config.gateway_virtual_services(host, gateways, request.port)
        principal = principal_of(INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT)
        source = Source(
            workload=Workload(INGRESS_NAMESPACE, INGRESS_LABELS, frozenset(g.key for g in gateways)),
            proxy=INGRESS_PROXY,
            principal=principal,
            labels=MappingProxyType(_source_labels(None, INGRESS_PROXY, principal, INGRESS_NAMESPACE)),
        )
        rules = [rule for vs in virtual_services for rule in vs.http]
        names = ", ".join(vs.key for vs in virtual_services) or "none"
        return self._by_rules(request, rules, source, f"the VirtualServices of host {host!r} at the gateway ({names})")

    def _outbound(self, request: RouteRequest, service: tuple[str, str] | None, source: Source) -> Route | None:
        """A sidecar's outbound routing, or None when the host is neither a Service nor a VirtualService host."""
        fqdn = service_fqdn(*service) if service else None
        hosts = [request.host.lower().rstrip(".")]
        if fqdn and fqdn not in hosts:
            hosts.append(fqdn)
        virtual_service = self.config.virtual_service(hosts, source.workload, source.workload.namespace)
        if virtual_service is not None:
            return self._by_rules(request, virtual_service.http, source, f"VirtualService {virtual_service.key}")
        entry = self._store.get(_SERVICES, *service) if service is not None else None
        if fqdn is None or entry is None or not (entry.obj.get("spec") or {}).get("selector"):
            # Not a Service, or one whose endpoints are not pods it selects (an ExternalName such as a
            # Knative route's placeholder, or hand-made Endpoints): the routing after the mesh knows it.
            return None
        default = HttpRoute(
            virtual_service="", index=0, name="default", matches=(), destinations=(RouteDestination(fqdn),), spec={}
        )
        return self._by_rules(request, [default], source, f"Service {fqdn}")

    def _by_rules(self, request: RouteRequest, rules: Iterable[HttpRoute], source: Source, what: str) -> Route:
        facts = RequestFacts.of(
            request.method, request.path, request.header("host") or request.host, request.port, request.headers
        )
        found = first_route(rules, facts, source.workload)
        if found is None:
            raise ProxyError(
                "RouteNotFound",
                f"no http rule of {what} matches {request.method} {request.path}",
                status=404,
                text="",
                flag="NR",
            )
        rule, match = found
        return self._route(request, facts, rule, match, source)

    def _route(
        self, request: RouteRequest, facts: RequestFacts, rule: HttpRoute, match: RequestMatch | None, source: Source
    ) -> Route:
        spec = rule.spec
        direct = policies.direct_of(spec, facts, match)
        if direct is not None:
            return Route(
                _no_upstream(rule.label),
                Policy(direct=direct, fault=policies.fault_of(spec.get("fault")), envoy_answers=True),
                labels=source.labels,
            )
        chosen = rule.pick(self._rng)
        if chosen is None:
            raise ProxyError(
                "NoRoute", f"{rule.label} has no destination with a weight above 0", status=503, text="", flag="NR"
            )
        policy = self._policy_of(rule, chosen)
        rewrite = rule.spec.get("rewrite")
        if rewrite or rule.mirror is not None:
            mirror = None
            if rule.mirror is not None:
                labels = MappingProxyType({**source.labels, **_service_labels(rule.mirror.host)})
                mirror = Route(self._chooser(request, rule.mirror, source), Policy(envoy_answers=True), labels=labels)
            path = policies.rewritten_path(rewrite, facts, match) if rewrite else None
            policy = replace(policy, path=path, mirror=mirror)
        return Route(
            self._chooser(request, chosen, source),
            policy,
            labels=MappingProxyType({**source.labels, **_service_labels(chosen.host)}),
        )

    def _policy_of(self, rule: HttpRoute, chosen: RouteDestination) -> Policy:
        """The rule's policy with the chosen destination's header operations: built once per rule and
        destination while the configuration stays the same (its per-request parts are added by `_route`)."""
        key = (id(rule), id(chosen))
        cached = self._policies.get(key)
        if cached is not None and cached[0] is rule:
            return cached[1]
        spec = rule.spec
        request_headers, response_headers, authority = policies.headers_of(spec.get("headers"))
        dest_request, dest_response, dest_authority = policies.headers_of(chosen.headers)
        policy = Policy(
            timeout=policies.seconds(spec.get("timeout")),
            retries=policies.retries_of(spec.get("retries")),
            fault=policies.fault_of(spec.get("fault")),
            authority=(spec.get("rewrite") or {}).get("authority") or authority or dest_authority,
            request_headers=_merged(request_headers, dest_request),
            response_headers=_merged(response_headers, dest_response),
            mirror_percent=rule.mirror_percent,
            envoy_answers=True,
        )
        self._policies[key] = (rule, policy)
        return policy

    # -- clusters and endpoints ---------------------------------------------------------------

    def _chooser(
        self, request: RouteRequest, destination: RouteDestination, source: Source
    ) -> Callable[[], Awaitable[Destination]]:
        """One attempt's backend: an endpoint of the destination's cluster, balanced, preferring hosts not tried."""
        tried: set[tuple[str, int]] = set()

        async def choose() -> Destination:
            hosts, balancer, via = self._cluster(request, destination, source.workload.namespace)
            fresh = [host for host in hosts if host not in tried] or hosts
            host = balancer.choose(fresh, self._rng)
            tried.add(host)
            balancer.started(host)
            return Destination(host[0], host[1], via=via, done=lambda: balancer.finished(host))

        return choose

    def _cluster(
        self, request: RouteRequest, destination: RouteDestination, caller_namespace: str
    ) -> tuple[list[tuple[str, int]], Balancer, str]:
        """The Ready endpoints of Envoy's cluster for a destination (host, port, subset) and its balancer."""
        identity = service_of_fqdn(destination.host)
        service = self._store.get(_SERVICES, *identity) if identity else None
        if identity is None or service is None:
            raise ProxyError(
                "ClusterNotFound",
                f"no Service {destination.host!r}: the route's destination names no cluster",
                status=503,
                text="",
                flag="NC",
            )
        rule = self.config.destination_rule(destination.host, caller_namespace)
        subset = None
        if destination.subset:
            subset = rule.subsets.get(destination.subset) if rule else None
            if subset is None:
                raise ProxyError(
                    "ClusterNotFound",
                    f"subset {destination.subset!r} of {destination.host} is defined by no DestinationRule",
                    status=503,
                    text="",
                    flag="NC",
                )
        ports = (service.obj.get("spec") or {}).get("ports") or []
        port = destination.port or (ports[0].get("port") if len(ports) == 1 else request.port)
        endpoints = self._store.get(_ENDPOINTS, *identity)
        # Envoy's cluster membership changes with the Endpoints, the Service and the pods' labels: the
        # member list is worked out again only when one of them has.
        key = (destination.host, int(port), destination.subset)
        cached = self._members.get(key)
        if cached is not None and cached[:3] == (service, endpoints, self.config.generation):
            hosts = cached[3]
        else:
            port_name = service_port_name(service.obj, int(port))
            hosts = ready_addresses(endpoints.obj if endpoints else {}, port_name)
            if subset is not None:
                hosts = [
                    h for h in hosts if (pod := self.config.pod_at(h[0])) is not None and subset.selects(pod.labels)
                ]
            self._members[key] = (service, endpoints, self.config.generation, hosts)
        if not hosts:
            raise ProxyError(
                "NoHealthyUpstream",
                f"{destination.host}:{port}{f' subset {subset.name}' if subset else ''} has no Ready endpoint",
                status=503,
                text="no healthy upstream",
                flag="UH",
            )
        policy = subset.load_balancer if subset else (rule.load_balancer if rule else DEFAULT_LOAD_BALANCER)
        balancer = self._balancers.get(key)
        if balancer is None or balancer.policy != policy:
            balancer = self._balancers[key] = Balancer(policy)
        return hosts, balancer, f"{identity[0]}/{identity[1]}"

    # -- the destination's sidecar ------------------------------------------------------------

    def inbound(self, request: RouteRequest, destination: Destination) -> None:
        """The proxy's inbound step: the destination's sidecar applies its AuthorizationPolicies
        (403 `RBAC: access denied`) to every attempt, whatever routed it."""
        self.sync()
        pod = self.config.pod_at(destination.host)
        if pod is None or not pod.sidecar:
            return
        policies_here = self.config.policies_for(pod)
        if not policies_here:
            return
        decision = decide(
            policies_here,
            AuthzRequest(
                principal=self.peer_principal(request),
                source_ip=request.client,
                method=request.method,
                path=request.path.split("?", 1)[0],
                host=(request.header("host") or request.host).lower(),
                port=destination.port,
                headers=dict(request.headers),
                destination_ip=destination.host,
            ),
        )
        if not decision.allowed:
            raise ProxyError(
                "Forbidden", f"{pod.namespace}/{pod.name}: {decision.reason}", status=403, text=DENIED_BODY, flag="RBAC"
            )

    def peer_principal(self, request: RouteRequest) -> str | None:
        """The mTLS identity the destination sees: the ingress gateway's for requests through it, the
        calling pod's if it has a sidecar, else none (plain text, PERMISSIVE mode)."""
        if request.host.startswith(INGRESS_NAME) and service_of_host(request.host, request.namespace) == (
            INGRESS_NAMESPACE,
            INGRESS_NAME,
        ):
            return principal_of(INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT)
        caller = request.caller
        if caller is None:
            return None
        pod = self.config.pod_at(request.client)
        if has_sidecar(caller.annotations) or (pod is not None and pod.sidecar):
            return principal_of(caller.namespace, caller.service_account)
        return None


def _merged(first: HeaderOperations, then: HeaderOperations) -> HeaderOperations:
    """Route-level operations, then the chosen destination's (Envoy applies a weighted cluster's last)."""
    return HeaderOperations(set=first.set + then.set, add=first.add + then.add, remove=first.remove + then.remove)


def _service_labels(fqdn: str) -> dict[str, str]:
    identity = service_of_fqdn(fqdn)
    namespace, name = identity if identity else (UNKNOWN, fqdn)
    return {"destination_service": fqdn, "destination_service_name": name, "destination_service_namespace": namespace}
