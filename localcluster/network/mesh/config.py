"""The mesh's configuration as the proxies hold it: compiled objects indexed by host, kept current.

istiod pushes each proxy its configuration when an object changes; here one `MeshConfig` follows the
store's events and recompiles only the object that changed. Requests then read indexes: the
VirtualServices of a host (exact names in a dict, wildcards in a short list), the DestinationRules
of a host, the AuthorizationPolicies of a namespace, the Gateways, and the pods by address (whether
each has a sidecar, its labels and identity). Nothing here scans the store while routing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from localcluster.network.mesh.authorization import ROOT_NAMESPACE, CompiledPolicy, compile_policy
from localcluster.network.mesh.destinationrules import (
    CompiledDestinationRule,
    UnsupportedTrafficPolicy,
    compile_destination_rule,
)
from localcluster.network.mesh.hosts import host_matches
from localcluster.network.mesh.injection import has_sidecar, workload_name
from localcluster.network.mesh.matching import InvalidMatch
from localcluster.network.mesh.virtualservices import CompiledVirtualService, Workload, compile_virtual_service
from localcluster.store import Store, WatchEvent

log = logging.getLogger("localcluster.mesh")

VIRTUAL_SERVICES = "networking.istio.io/virtualservices"
DESTINATION_RULES = "networking.istio.io/destinationrules"
GATEWAYS = "networking.istio.io/gateways"
AUTHORIZATION_POLICIES = "security.istio.io/authorizationpolicies"
PODS = "core/pods"
KEYS = (VIRTUAL_SERVICES, DESTINATION_RULES, GATEWAYS, AUTHORIZATION_POLICIES, PODS)

#: The ingress gateway localcluster plays: Istio's default `istio-ingressgateway` deployment.
INGRESS_NAMESPACE = ROOT_NAMESPACE
INGRESS_NAME = "istio-ingressgateway"
INGRESS_LABELS: Mapping[str, str] = MappingProxyType({"istio": "ingressgateway", "app": "istio-ingressgateway"})
INGRESS_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"


@dataclass(frozen=True)
class MeshPod:
    """A pod as the mesh sees it: where it is, what it is called in telemetry, and whether it has a sidecar."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    service_account: str
    workload: str
    sidecar: bool

    @property
    def version(self) -> str:
        return self.labels.get("service.istio.io/canonical-revision") or self.labels.get("version") or "unknown"

    @property
    def app(self) -> str:
        return self.labels.get("service.istio.io/canonical-name") or self.labels.get("app") or self.workload


@dataclass(frozen=True)
class ServerHosts:
    """One Gateway server: its port and the `namespace/host` pairs it accepts (`*` any namespace)."""

    port: int
    hosts: tuple[tuple[str, str], ...]

    def accepts(self, virtual_service: CompiledVirtualService, host_pattern: str, gateway_namespace: str) -> bool:
        for namespace, host in self.hosts:
            if namespace == ".":
                namespace = gateway_namespace
            if namespace not in ("*", virtual_service.namespace):
                continue
            if host_matches(host, host_pattern) or host_matches(host_pattern, host):
                return True
        return False


@dataclass(frozen=True)
class CompiledGateway:
    namespace: str
    name: str
    selector: Mapping[str, str]
    servers: tuple[ServerHosts, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.selector.items())


def compile_gateway(obj: Mapping[str, Any]) -> CompiledGateway:
    metadata = obj["metadata"]
    spec = obj.get("spec") or {}
    servers = []
    for server in spec.get("servers") or []:
        if (server.get("port") or {}).get("protocol", "HTTP").upper() not in ("HTTP", "HTTP2"):
            continue  # TLS and TCP servers: localcluster's network is plain HTTP
        hosts = []
        for entry in server.get("hosts") or []:
            namespace, _, host = entry.rpartition("/")
            hosts.append((namespace or "*", host.lower()))
        servers.append(ServerHosts(int(server["port"]["number"]), tuple(hosts)))
    return CompiledGateway(
        namespace=metadata["namespace"],
        name=metadata["name"],
        selector=MappingProxyType(dict(spec.get("selector") or {})),
        servers=tuple(servers),
    )


class MeshConfig:
    """Compiled mesh objects, indexed for routing; `apply(event)` keeps them current."""

    def __init__(self) -> None:
        self._virtual_services: dict[str, CompiledVirtualService] = {}
        self._destination_rules: dict[str, CompiledDestinationRule] = {}
        self._gateways: dict[str, CompiledGateway] = {}
        self._policies: dict[str, CompiledPolicy] = {}
        self._pods: dict[str, MeshPod] = {}  # by `namespace/name`
        self._pod_at: dict[str, MeshPod] = {}  # by IP
        #: Objects that could not be compiled, by `kind namespace/name`, with the reason.
        self.problems: dict[str, str] = {}
        self._vs_by_host: dict[str, list[CompiledVirtualService]] = {}
        self._vs_wildcards: list[CompiledVirtualService] = []
        self._dr_by_host: dict[str, list[CompiledDestinationRule]] = {}
        self._policies_by_namespace: dict[str, list[CompiledPolicy]] = {}
        #: Bumped on every change: resolvers cache per generation.
        self.generation = 0

    # -- loading ------------------------------------------------------------------------------

    def load(self, store: Store) -> int:
        """Compile every mesh object and pod in the store; returns the store's version to watch from."""
        version = store.resource_version
        for key in KEYS:
            entries, version = store.list(key)
            for entry in entries:
                self._put(key, entry.obj)
        self._reindex()
        return version

    def apply(self, events: Iterable[WatchEvent]) -> None:
        """Apply a batch of store events (others than the mesh's kinds and pods are skipped)."""
        changed = False
        for event in events:
            if event.key not in KEYS:
                continue
            if event.type == "DELETED":
                self._remove(event.key, event.entry.obj)
            else:
                self._put(event.key, event.entry.obj)
            changed = changed or event.key != PODS
        if changed:
            self._reindex()
        self.generation += 1

    def _put(self, key: str, obj: Mapping[str, Any]) -> None:
        name = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if key == PODS:
            self._put_pod(name, obj)
            return
        problem_key = f"{key.rpartition('/')[2]} {name}"
        self.problems.pop(problem_key, None)
        try:
            if key == VIRTUAL_SERVICES:
                self._virtual_services[name] = compile_virtual_service(obj)
            elif key == DESTINATION_RULES:
                self._destination_rules[name] = compile_destination_rule(obj)
            elif key == GATEWAYS:
                self._gateways[name] = compile_gateway(obj)
            else:
                self._policies[name] = compile_policy(obj)
        except (InvalidMatch, UnsupportedTrafficPolicy, KeyError, TypeError, ValueError) as exc:
            self.problems[problem_key] = str(exc)
            self._forget(key, name)
            log.warning("mesh: %s is ignored: %s", problem_key, exc)

    def _put_pod(self, name: str, obj: Mapping[str, Any]) -> None:
        self._remove(PODS, obj)
        metadata, spec = obj["metadata"], obj.get("spec") or {}
        ip = (obj.get("status") or {}).get("podIP")
        if not ip:
            return
        pod = MeshPod(
            namespace=metadata["namespace"],
            name=metadata["name"],
            ip=ip,
            labels=MappingProxyType(dict(metadata.get("labels") or {})),
            service_account=spec.get("serviceAccountName") or "default",
            workload=workload_name(obj),
            sidecar=has_sidecar(metadata.get("annotations") or {}),
        )
        self._pods[name] = pod
        self._pod_at[ip] = pod

    def _remove(self, key: str, obj: Mapping[str, Any]) -> None:
        name = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if key == PODS:
            pod = self._pods.pop(name, None)
            # The address may already belong to a newer pod: only its own pod releases it.
            if pod is not None and self._pod_at.get(pod.ip) is pod:
                del self._pod_at[pod.ip]
            return
        self.problems.pop(f"{key.rpartition('/')[2]} {name}", None)
        self._forget(key, name)

    def _forget(self, key: str, name: str) -> None:
        tables: dict[str, dict[str, Any]] = {
            VIRTUAL_SERVICES: self._virtual_services,
            DESTINATION_RULES: self._destination_rules,
            GATEWAYS: self._gateways,
            AUTHORIZATION_POLICIES: self._policies,
        }
        tables[key].pop(name, None)

    def _reindex(self) -> None:
        """Rebuild the host and namespace indexes (once per batch of changes to mesh objects)."""
        by_host: dict[str, list[CompiledVirtualService]] = {}
        wildcards: list[CompiledVirtualService] = []
        for vs in sorted(self._virtual_services.values(), key=lambda v: (v.created, v.key)):
            for host in vs.hosts:
                if host.startswith("*"):
                    if vs not in wildcards:
                        wildcards.append(vs)
                else:
                    by_host.setdefault(host, []).append(vs)
        self._vs_by_host, self._vs_wildcards = by_host, wildcards
        rules: dict[str, list[CompiledDestinationRule]] = {}
        for rule in sorted(self._destination_rules.values(), key=lambda r: (r.created, r.key)):
            rules.setdefault(rule.host, []).append(rule)
        self._dr_by_host = rules
        policies: dict[str, list[CompiledPolicy]] = {}
        for policy in sorted(self._policies.values(), key=lambda p: p.key):
            policies.setdefault(policy.namespace, []).append(policy)
        self._policies_by_namespace = policies

    # -- look-ups -----------------------------------------------------------------------------

    def pod_at(self, ip: str) -> MeshPod | None:
        return self._pod_at.get(ip)

    def virtual_service(
        self, hosts: Iterable[str], workload: Workload, namespace: str
    ) -> CompiledVirtualService | None:
        """The VirtualService a sidecar in `namespace` applies to a request for one of `hosts`.

        Istio keeps one VirtualService per host for a sidecar: one in the caller's own namespace
        first, else the oldest, among those bound to the mesh and exported to the caller.
        """
        candidates: list[CompiledVirtualService] = []
        for host in hosts:
            candidates = [
                vs for vs in self._vs_by_host.get(host, ()) if vs.bound_to(workload) and vs.visible_from(namespace)
            ]
            if candidates:
                break
        else:
            candidates = [
                vs
                for vs in self._vs_wildcards
                if vs.bound_to(workload)
                and vs.visible_from(namespace)
                and any(host_matches(pattern, host) for pattern in vs.hosts for host in hosts)
            ]
        if not candidates:
            return None
        return next((vs for vs in candidates if vs.namespace == namespace), candidates[0])

    def gateway_virtual_services(
        self, host: str, gateways: Iterable[CompiledGateway], port: int
    ) -> list[CompiledVirtualService]:
        """The VirtualServices a gateway merges for `host` on `port`: bound to one of its Gateways whose
        server on that port accepts their namespace and host, oldest first (their rules are concatenated)."""
        found = []
        for vs in sorted(self._virtual_services.values(), key=lambda v: (v.created, v.key)):
            for gateway in gateways:
                if gateway.key not in vs.gateways:
                    continue
                servers = [server for server in gateway.servers if server.port == port]
                patterns = [pattern for pattern in vs.hosts if host_matches(pattern, host)]
                if any(server.accepts(vs, pattern, gateway.namespace) for server in servers for pattern in patterns):
                    found.append(vs)
                    break
        return found

    def gateways_selecting(self, labels: Mapping[str, str]) -> list[CompiledGateway]:
        return [gateway for gateway in self._gateways.values() if gateway.selects(labels)]

    def destination_rule(self, host: str, caller_namespace: str) -> CompiledDestinationRule | None:
        """The DestinationRule for a Service host: the caller's namespace first, then the Service's,
        then the root namespace (Istio's lookup order), among those exported to the caller."""
        rules = [rule for rule in self._dr_by_host.get(host, ()) if rule.visible_from(caller_namespace)]
        if not rules:
            return None
        service_namespace = host.split(".")[1] if host.count(".") >= 1 else ""
        for namespace in (caller_namespace, service_namespace, ROOT_NAMESPACE):
            for rule in rules:
                if rule.namespace == namespace:
                    return rule
        return rules[0]

    def policies_for(self, pod: MeshPod) -> list[CompiledPolicy]:
        """The AuthorizationPolicies that apply to a pod: its namespace's and the root namespace's."""
        candidates = [*self._policies_by_namespace.get(ROOT_NAMESPACE, ())]
        if pod.namespace != ROOT_NAMESPACE:
            candidates += self._policies_by_namespace.get(pod.namespace, ())
        return [policy for policy in candidates if policy.applies_to(pod.namespace, pod.labels)]

    def problem_for(self, kind: str, namespace: str, name: str) -> str | None:
        return self.problems.get(f"{kind} {namespace}/{name}")
