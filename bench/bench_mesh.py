"""What mesh routing adds to a call: the sidecar's path against the plain Service path and a direct call.

One backend pod (a minimal ASGI app under uvicorn, subset v1 of Service `bench`) and localcluster's
proxy over a real store, each in a process of its own; this process calls from two pod addresses:
one pod without a sidecar (plain Service routing, kube-proxy's part) and one with a sidecar (its
VirtualService: a header rule, then a weighted route to a DestinationRule subset, Istio's default
retries, and the destination's AuthorizationPolicy). The three paths are called in turn at a fixed
rate on warm keep-alive connections, so they see the same load. The mesh holds 10, 100, then 1000
other VirtualServices (three rules each, for other hosts): routing looks a host up in an index, so
the figures should not grow with them.

    python -m bench.bench_mesh [--requests 1000] [--rate 200]

prints plain `name: value unit` lines. Timings on a shared machine are noisy: compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_proxy import BACKEND_HOST, KeepAliveCaller, child, percentile

SERVICE = "bench"
NAMESPACE = "bookstore"
PLAIN_CALLER = "127.0.9.2"
MESH_CALLER = "127.0.9.3"
SIDECAR = {"sidecar.istio.io/status": '{"containers":[],"revision":"default"}'}
ROUTE_COUNTS = (10, 100, 1000)
#: How the server processes run this module (from the project's root, as `python -m bench` runs).
MODULE = ("-m", "bench.bench_mesh")


def _pod(name: str, ip: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "web", "image": "bench"}], "serviceAccountName": name},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _virtual_service(name: str, host: str, subset: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "hosts": [host],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "tester"}}}],
                    "route": [{"destination": {"host": host, "subset": "v2"}}],
                },
                {"match": [{"uri": {"regex": "/api/v[0-9]+/.*"}}], "route": [{"destination": {"host": host}}]},
                {
                    "route": [
                        {"destination": {"host": host, "subset": subset}, "weight": 100},
                        {"destination": {"host": host, "subset": "v2"}, "weight": 0},
                    ]
                },
            ],
        },
    }


def populated(state_dir: Path, backend_port: int, routes: int) -> Any:
    """A store with the backend, the two callers and the mesh objects (a Cluster over it)."""
    from localcluster.api.cluster import Cluster
    from localcluster.api.resources import ResourceRegistry
    from localcluster.api.schemas import SchemaIndex
    from localcluster.server import bootstrap
    from localcluster.settings import Settings
    from localcluster.store import Store

    registry = ResourceRegistry.load(Settings().schemas_dir)
    cluster = Cluster(Store(state_dir / "store.sqlite"), registry, SchemaIndex(registry))
    bootstrap(cluster)

    def create(group: str, plural: str, body: dict[str, Any]) -> None:
        kind = registry.get(group, plural)
        status = body.pop("status", None)
        created = cluster.create(kind, kind.storage_version, NAMESPACE, body).obj
        if status is not None:
            created["status"] = status
            name = created["metadata"]["name"]
            cluster.replace(kind, kind.storage_version, NAMESPACE, name, created, subresource="status")

    create("", "pods", _pod("backend", BACKEND_HOST, {"app": SERVICE, "version": "v1"}, SIDECAR))
    create("", "pods", _pod("plain", PLAIN_CALLER, {"app": "plain"}))
    create("", "pods", _pod("meshed", MESH_CALLER, {"app": "meshed"}, SIDECAR))
    service = {"metadata": {"name": SERVICE}, "spec": {"ports": [{"port": 80, "targetPort": backend_port}]}}
    create("", "services", service)
    endpoints = {"addresses": [{"ip": BACKEND_HOST}], "ports": [{"port": backend_port}]}
    create("", "endpoints", {"metadata": {"name": SERVICE}, "subsets": [endpoints]})
    subsets = [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")]
    rule = {"metadata": {"name": SERVICE}, "spec": {"host": SERVICE, "subsets": subsets}}
    create("networking.istio.io", "destinationrules", rule)
    create("networking.istio.io", "virtualservices", _virtual_service(SERVICE, SERVICE, "v1"))
    for index in range(routes):
        create("networking.istio.io", "virtualservices", _virtual_service(f"other-{index}", f"other-{index}", "v1"))
    allow = {"selector": {"matchLabels": {"app": SERVICE}}, "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}
    create("security.istio.io", "authorizationpolicies", {"metadata": {"name": SERVICE}, "spec": allow})
    return cluster


def serve_proxy(backend_port: int, state_dir: Path, routes: int) -> None:
    """The proxy localcluster runs, over the populated store."""
    from localcluster.network import ServiceProxy

    cluster = populated(state_dir, backend_port, routes)

    async def run() -> None:
        async with ServiceProxy.for_store(cluster.store) as proxy:
            print(proxy.address[1], flush=True)
            await asyncio.Event().wait()

    asyncio.run(run())


def routing_decision(routes: int, count: int) -> float:
    """Microseconds the mesh takes to route one request (resolve, choose, inbound RBAC), in-process."""
    from localcluster.network import Caller, RouteRequest
    from localcluster.network.mesh.resolver import MeshResolver

    with tempfile.TemporaryDirectory(prefix="bench-mesh-") as state_dir:
        cluster = populated(Path(state_dir), 8080, routes)
        mesh = MeshResolver(cluster.store)
        caller = Caller(NAMESPACE, "meshed", "meshed", {"app": "meshed"}, SIDECAR)
        request = RouteRequest(SERVICE, 80, NAMESPACE, MESH_CALLER, "GET", "/api/books", (("host", SERVICE),), caller)

        async def route_many() -> float:
            started = time.perf_counter()
            for _ in range(count):
                route = await mesh.resolve(request)
                assert route is not None
                destination = await route.choose()
                mesh.inbound(request, destination)
                if destination.done is not None:
                    destination.done()
            return (time.perf_counter() - started) / count * 1e6

        try:
            asyncio.run(route_many())  # warm up
            return asyncio.run(route_many())
        finally:
            mesh.close()
            cluster.store.close()


def paced(backend_port: int, proxy_port: int, count: int, rate: float) -> dict[str, list[float]]:
    """Seconds per call of each path, one call of each every 1/rate s, on warm keep-alive connections."""
    callers = {
        "direct": KeepAliveCaller((BACKEND_HOST, backend_port), "/", BACKEND_HOST),
        "plain": KeepAliveCaller(("127.0.0.1", proxy_port), f"http://{SERVICE}/", SERVICE, source=PLAIN_CALLER),
        "mesh": KeepAliveCaller(("127.0.0.1", proxy_port), f"http://{SERVICE}/", SERVICE, source=MESH_CALLER),
    }
    timings: dict[str, list[float]] = {name: [] for name in callers}
    try:
        for _ in range(100):  # warm up: connections, pools, compiled routes
            for caller in callers.values():
                caller.call()
        interval = 1 / rate
        start = time.perf_counter()
        for tick in range(count):
            pause = start + tick * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # the pace of the open loop, not a wait for a state
            for name, caller in callers.items():
                began = time.perf_counter()
                caller.call()
                timings[name].append(time.perf_counter() - began)
    finally:
        for caller in callers.values():
            caller.close()
    return timings


def mesh_routed(proxy_port: int) -> float:
    """How many requests the backend's sidecar reports from the meshed caller: proof the mesh path was taken."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    stats = httpx.get(f"http://{BACKEND_HOST}:15020/stats/prometheus", proxy=f"http://127.0.0.1:{proxy_port}")
    return sum(
        sample.value
        for family in text_string_to_metric_families(stats.text)
        for sample in family.samples
        if sample.name == "istio_requests_total" and sample.labels.get("source_workload") == "meshed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="calls per path per route count (default 1000)")
    parser.add_argument("--rate", type=float, default=200.0, help="calls per second per path (default 200)")
    parser.add_argument("--serve-backend", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", type=int, metavar="BACKEND_PORT", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--routes", type=int, default=10, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_backend:
        from bench.bench_proxy import serve_backend

        serve_backend()
        return
    if options.serve_proxy:
        serve_proxy(options.serve_proxy, options.state_dir, options.routes)
        return
    print(f"rate: {options.rate:.0f} requests/s per path, {options.requests} requests per path")
    for routes in ROUTE_COUNTS:
        with (
            tempfile.TemporaryDirectory(prefix="bench-mesh-") as state_dir,
            child("--serve-backend", command=MODULE) as backend_port,
            child(
                "--serve-proxy", str(backend_port), "--state-dir", state_dir, "--routes", str(routes), command=MODULE
            ) as proxy_port,
        ):
            timings = paced(backend_port, proxy_port, options.requests, options.rate)
            routed = mesh_routed(proxy_port)
        p50 = {name: statistics.median(samples) * 1000 for name, samples in timings.items()}
        p99 = {name: percentile(samples, 0.99) * 1000 for name, samples in timings.items()}
        for name in timings:
            print(f"{routes} routes: {name} p50: {p50[name]:.3f} ms, p99: {p99[name]:.3f} ms")
        print(f"{routes} routes: mesh added over plain p50: {p50['mesh'] - p50['plain']:.3f} ms")
        print(f"{routes} routes: mesh added over plain p99: {p99['mesh'] - p99['plain']:.3f} ms")
        print(f"{routes} routes: mesh added over direct p50: {p50['mesh'] - p50['direct']:.3f} ms")
        print(f"{routes} routes: requests the backend's sidecar saw from the meshed caller: {routed:.0f} count")
    for routes in ROUTE_COUNTS:
        decision = routing_decision(routes, 5000)
        print(f"{routes} routes: mesh routing decision (in-process, resolve + choose + RBAC): {decision:.1f} µs")


if __name__ == "__main__":
    main()
