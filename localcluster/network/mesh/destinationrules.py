"""DestinationRules: named subsets of a Service's endpoints, and how Envoy balances over them.

A subset is a label selector over the Service's pods (`version: v2`); its own `trafficPolicy`
replaces the rule's, block by block, as pilot merges them. Load balancing follows Envoy's simple
policies: ROUND_ROBIN, RANDOM and LEAST_REQUEST (Istio's default, power of two choices over the
requests in flight, counted by the attempt leases the proxy gives back).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from localcluster.network.mesh.hosts import qualify

#: Istio's default when no DestinationRule says otherwise (pilot's defaultLBAlgorithm).
DEFAULT_LOAD_BALANCER = "LEAST_REQUEST"
#: Simple policies localcluster balances as Envoy does; the deprecated LEAST_CONN is LEAST_REQUEST.
SIMPLE_POLICIES = {"UNSPECIFIED": DEFAULT_LOAD_BALANCER, "LEAST_CONN": "LEAST_REQUEST"}
_EMPTY: Mapping[str, str] = MappingProxyType({})
_RNG = random.Random()


class UnsupportedTrafficPolicy(ValueError):
    """A load balancer localcluster cannot apply faithfully (consistent hashing, PASSTHROUGH)."""


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    load_balancer: str

    def selects(self, pod_labels: Mapping[str, str]) -> bool:
        return all(pod_labels.get(key) == value for key, value in self.labels.items())


@dataclass(frozen=True)
class CompiledDestinationRule:
    namespace: str
    name: str
    created: str
    host: str
    load_balancer: str
    subsets: Mapping[str, Subset]
    export_to: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def visible_from(self, namespace: str) -> bool:
        return "*" in self.export_to or namespace in self.export_to


def load_balancer_of(policy: Mapping[str, Any] | None, inherited: str = DEFAULT_LOAD_BALANCER) -> str:
    """The simple policy a trafficPolicy names, `inherited` if it names none."""
    lb = (policy or {}).get("loadBalancer")
    if not lb:
        return inherited
    if "simple" in lb:
        simple = str(lb["simple"])
        if simple == "PASSTHROUGH":
            raise UnsupportedTrafficPolicy(
                "loadBalancer PASSTHROUGH sends to the original destination address, which localcluster's "
                "proxy does not have (callers address Services by name): use ROUND_ROBIN, RANDOM or LEAST_REQUEST"
            )
        return SIMPLE_POLICIES.get(simple, simple)
    if "consistentHash" in lb:
        raise UnsupportedTrafficPolicy(
            "loadBalancer consistentHash is not implemented by localcluster: use ROUND_ROBIN, RANDOM or LEAST_REQUEST"
        )
    return inherited


def compile_destination_rule(obj: Mapping[str, Any]) -> CompiledDestinationRule:
    metadata = obj["metadata"]
    namespace = metadata["namespace"]
    spec = obj.get("spec") or {}
    default = load_balancer_of(spec.get("trafficPolicy"))
    subsets = {
        subset["name"]: Subset(
            name=subset["name"],
            labels=MappingProxyType(dict(subset.get("labels") or {})),
            load_balancer=load_balancer_of(subset.get("trafficPolicy"), default),
        )
        for subset in spec.get("subsets") or []
        if subset.get("name")
    }
    return CompiledDestinationRule(
        namespace=namespace,
        name=metadata["name"],
        created=metadata.get("creationTimestamp", ""),
        host=qualify(spec.get("host", ""), namespace),
        load_balancer=default,
        subsets=MappingProxyType(subsets),
        export_to=frozenset(namespace if e == "." else e for e in spec.get("exportTo") or ["*"]),
    )


@dataclass
class Balancer:
    """The state of one Envoy cluster's load balancer: a round-robin turn, requests in flight per host."""

    policy: str
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _active: dict[tuple[str, int], int] = field(default_factory=dict)

    def choose(self, hosts: Sequence[tuple[str, int]], rng: random.Random | None = None) -> tuple[str, int]:
        """One of `hosts` (never empty) by the policy."""
        rng = rng or _RNG
        if len(hosts) == 1:
            return hosts[0]
        if self.policy == "RANDOM":
            return hosts[rng.randrange(len(hosts))]
        if self.policy == "ROUND_ROBIN":
            return hosts[next(self._turn) % len(hosts)]
        # LEAST_REQUEST with equal weights: Envoy draws two hosts and keeps the less busy one.
        first, second = rng.sample(range(len(hosts)), 2)
        a, b = hosts[first], hosts[second]
        return a if self._active.get(a, 0) <= self._active.get(b, 0) else b

    def started(self, host: tuple[str, int]) -> None:
        self._active[host] = self._active.get(host, 0) + 1

    def finished(self, host: tuple[str, int]) -> None:
        left = self._active.get(host, 0) - 1
        if left > 0:
            self._active[host] = left
        else:
            self._active.pop(host, None)

    def active(self, host: tuple[str, int]) -> int:
        return self._active.get(host, 0)
