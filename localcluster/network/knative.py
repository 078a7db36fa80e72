"""Knative's data plane: a Route's hosts to its revisions' pods, with the activator's and queue-proxy's parts.

The hosts are the ones the Route's status lists: its URL and each tag's (`<tag>-<route>.<ns>...`),
and, when they are cluster-local, the shorter names the placeholder Services give them in cluster
DNS (`echo`, `echo.ns`, `echo.ns.svc`). A request picks a revision by the status' percents, as the
ingress's weighted clusters do; then `Activator.choose`:

- counts it in at once (a lease on the revision's ConcurrencyMeter, the autoscaler's metric, held
  requests included, as the activator reports them) and counts it out when the attempt ends;
- sends it to a ready pod of the revision: one in the private Service's Endpoints, or one the
  activator has probed ready itself (it probes pods directly, as upstream's does, so a cold start
  does not wait for the kubelet and the Endpoints controller);
- honours containerConcurrency as a hard limit per pod, queueing the rest (503
  `pending request queue full` beyond upstream's queue depth);
- holds the request while the revision has no ready pod (at zero, the autoscaler is poked by the
  lease), and answers 504 `activator request timeout` after the revision's timeoutSeconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localcluster.knative import autoscaler as kpa
from localcluster.knative import traffic
from localcluster.knative.keys import (
    CONFIGURATION_LABEL,
    GROUP,
    REVISION_LABEL,
    ROUTE_LABEL,
    SERVICE_LABEL,
)
from localcluster.knative.names import private_service_name
from localcluster.network.routing import Destination, ProxyError, Route, RouteRequest
from localcluster.network.services import service_of_host
from localcluster.store import Store

log = logging.getLogger("localcluster.knative.activator")

_ROUTES = f"{GROUP}/routes"
_REVISIONS = f"{GROUP}/revisions"
_SERVICES = "core/services"
_ENDPOINTS = "core/endpoints"
_PODS = "core/pods"
#: Requests queued for capacity beyond this are refused (activator/net/throttler.go breakerQueueDepth).
QUEUE_DEPTH = 10_000
#: How often a held request looks again for a ready pod, and how long a direct probe may take.
_LOOK_INTERVAL = 0.025
_PROBE_TIMEOUT = 0.25
_DEFAULT_TIMEOUT_SECONDS = 300


@dataclass
class _RevisionState:
    """What the activator keeps per revision: in-flight requests per pod, pods it probed ready, waiters."""

    in_flight: dict[str, int] = field(default_factory=dict)
    probed_ready: set[str] = field(default_factory=set)
    probing: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    waiting: int = 0
    turns: itertools.count[int] = field(default_factory=itertools.count)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class _Target:
    namespace: str
    route: str
    tag: str


class KnativeResolver:
    """The resolver for Knative hosts (put in front of the Service resolver, after the mesh's)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._load = kpa.load_for(store, clock)
        self._random = random.Random()
        self._revisions: dict[kpa.RevisionKey, _RevisionState] = {}

    async def resolve(self, request: RouteRequest) -> Route | None:
        target = self._target(request.host, request.namespace)
        if target is None:
            return None
        route = self._store.get(_ROUTES, target.namespace, target.route)
        status_traffic = ((route.obj.get("status") or {}).get("traffic") or []) if route else []
        split = traffic.split(status_traffic, target.tag) if status_traffic else []
        if not split or not any(percent for _name, percent in split):
            raise ProxyError(
                "RouteNotReady",
                f'Knative Route "{target.namespace}/{target.route}" has no traffic assigned yet: see '
                f"`kubectl get route {target.route} -n {target.namespace}` (its Ready condition says why)",
            )
        names = [name for name, _percent in split]
        revision_name = self._random.choices(names, weights=[percent for _name, percent in split])[0]
        revision = self._store.get(_REVISIONS, target.namespace, revision_name)
        if revision is None:
            raise ProxyError("RevisionMissing", f'Revision "{revision_name}" of Route "{target.route}" does not exist')
        labels = revision.obj["metadata"].get("labels") or {}
        telemetry = {
            "destination_service": f"{target.route}.{target.namespace}",
            "revision": revision_name,
            "configuration": labels.get(CONFIGURATION_LABEL, ""),
            "service": labels.get(SERVICE_LABEL, ""),
        }
        key = (target.namespace, revision_name)
        spec = revision.obj.get("spec") or {}

        async def choose() -> Destination:
            return await self.choose(key, spec, via=f"{target.namespace}/{target.route}", labels=telemetry)

        return Route(choose, labels=telemetry)

    # -- which route a host names ------------------------------------------------------------------

    def _target(self, host: str, caller_namespace: str) -> _Target | None:
        """The Route (and tag) a host addresses: a cluster name of a placeholder Service, or a route's URL host."""
        host = host.lower().rstrip(".")
        identity = service_of_host(host, caller_namespace)
        if identity is not None:
            namespace, name = identity
            placeholder = self._store.get(_SERVICES, namespace, name)
            route_name = (placeholder.obj["metadata"].get("labels") or {}).get(ROUTE_LABEL) if placeholder else None
            if route_name:
                route = self._store.get(_ROUTES, namespace, route_name)
                tag = _tag_of(route.obj, name) if route is not None else None
                if tag is not None:
                    return _Target(namespace, route_name, tag)
        entries, _version = self._store.list(_ROUTES)
        for entry in entries:
            status = entry.obj.get("status") or {}
            metadata = entry.obj["metadata"]
            if _url_host(status.get("url")) == host:
                return _Target(metadata["namespace"], metadata["name"], "")
            for target in status.get("traffic") or []:
                if target.get("tag") and _url_host(target.get("url")) == host:
                    return _Target(metadata["namespace"], metadata["name"], target["tag"])
        return None

    # -- the activator ----------------------------------------------------------------------------

    def _state(self, key: kpa.RevisionKey) -> _RevisionState:
        return self._revisions.setdefault(key, _RevisionState())

    async def choose(
        self, key: kpa.RevisionKey, spec: dict[str, Any], *, via: str, labels: dict[str, str]
    ) -> Destination:
        """One attempt's pod of the revision: at once if one is ready with capacity, else once there is."""
        release = self._load.lease(key)
        state = self._state(key)
        capacity = int(spec.get("containerConcurrency") or 0)
        port = _user_port(spec)
        timeout = float(spec.get("timeoutSeconds") or _DEFAULT_TIMEOUT_SECONDS)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            if state.waiting >= QUEUE_DEPTH:
                raise ProxyError(
                    "QueueFull", "pending request queue full", status=503, text="pending request queue full"
                )
            state.waiting += 1
            try:
                ip = await self._wait_for_pod(key, state, capacity, port, spec, deadline)
            finally:
                state.waiting -= 1
        except BaseException:
            release()
            raise
        state.in_flight[ip] = state.in_flight.get(ip, 0) + 1

        def done() -> None:
            state.in_flight[ip] = max(0, state.in_flight.get(ip, 1) - 1)
            release()
            state.changed.set()

        return Destination(ip, port, via=via, labels={**labels, "pod_ip": ip}, done=done)

    async def _wait_for_pod(
        self,
        key: kpa.RevisionKey,
        state: _RevisionState,
        capacity: int,
        port: int,
        spec: dict[str, Any],
        deadline: float,
    ) -> str:
        loop = asyncio.get_running_loop()
        while True:
            ready = self._ready_pods(key, state, port, spec)
            free = [ip for ip in ready if not capacity or state.in_flight.get(ip, 0) < capacity]
            if free:
                return self._pick(state, free, capacity)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProxyError(
                    "ActivationTimeout",
                    f'revision "{key[1]}" had no ready pod within its timeoutSeconds',
                    status=504,
                    text="activator request timeout",
                )
            state.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.changed.wait(), min(_LOOK_INTERVAL, remaining))

    def _pick(self, state: _RevisionState, free: list[str], capacity: int) -> str:
        """firstAvailable for a concurrency limit, else the less loaded of two random pods (randomChoice2)."""
        if capacity:
            start = next(state.turns) % len(free)
            return free[start]
        if len(free) == 1:
            return free[0]
        first, second = self._random.sample(free, 2)
        return first if state.in_flight.get(first, 0) <= state.in_flight.get(second, 0) else second

    def _ready_pods(self, key: kpa.RevisionKey, state: _RevisionState, port: int, spec: dict[str, Any]) -> list[str]:
        """Pods in the private Service's Endpoints, plus those the activator has probed ready itself."""
        namespace, name = key
        endpoints = self._store.get(_ENDPOINTS, namespace, private_service_name(name))
        listed = {
            address["ip"]
            for subset in ((endpoints.obj.get("subsets") or []) if endpoints else [])
            for address in subset.get("addresses") or []
        }
        running = self._running_pods(namespace, name)
        state.probed_ready &= running
        for ip in running - listed - state.probed_ready:
            if ip not in state.probing:
                state.probing[ip] = asyncio.create_task(
                    self._probe(state, ip, port, spec), name=f"activator-probe-{ip}"
                )
        return sorted((listed & running) | state.probed_ready)

    def _running_pods(self, namespace: str, revision: str) -> set[str]:
        entries, _version = self._store.list(_PODS, namespace)
        found = set()
        for entry in entries:
            pod = entry.obj
            status = pod.get("status") or {}
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                continue
            if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
                continue
            found.add(status["podIP"])
        return found

    async def _probe(self, state: _RevisionState, ip: str, port: int, spec: dict[str, Any]) -> None:
        """The activator's own readiness probe of a pod: the revision's readiness probe, aimed at the pod."""
        try:
            if await _probe_once(ip, port, _readiness_path(spec)):
                state.probed_ready.add(ip)
                state.changed.set()
        finally:
            state.probing.pop(ip, None)


async def _probe_once(ip: str, port: int, path: str | None) -> bool:
    """A TCP connect, or an HTTP GET of the readiness path expecting 2xx/3xx."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), _PROBE_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    try:
        if path is None:
            return True
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: Knative-Activator-Probe\r\n"
            "K-Network-Probe: queue\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), _PROBE_TIMEOUT)
        parts = line.split()
        return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _user_port(spec: dict[str, Any]) -> int:
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return int(port["containerPort"])
    return 8080


def _readiness_path(spec: dict[str, Any]) -> str | None:
    """The serving container's httpGet readiness path, or None for a TCP probe."""
    for container in spec.get("containers") or []:
        probe = container.get("readinessProbe") or {}
        if isinstance(probe.get("httpGet"), dict):
            return probe["httpGet"].get("path") or "/"
    return None


def _url_host(url: Any) -> str:
    if not isinstance(url, str):
        return ""
    return url.split("://", 1)[-1].split("/", 1)[0].lower()


def _tag_of(route: dict[str, Any], label: str) -> str | None:
    """The tag whose host starts with `label` ("" for the route's own name); None if no longer routed."""
    if _url_host((route.get("status") or {}).get("url")).split(".", 1)[0] == label:
        return ""
    for target in (route.get("status") or {}).get("traffic") or []:
        if target.get("tag") and _url_host(target.get("url")).split(".", 1)[0] == label:
            return str(target["tag"])
    return None
