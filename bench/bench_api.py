"""API server figures: `lab up` to ready, GET/LIST latency and rate, watch event latency, idle RSS, and what
access control costs (a GET as a ServiceAccount through RBAC; authentication plus authorization in-process).

Run: python -m bench.bench_api   (about 30 s; loopback only; every cluster in a temporary LAB_HOME)
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench._stats import median, percentile, report, report_latencies
from localcluster.api.access import AccessMiddleware
from localcluster.controllers.rbac import ClusterRoleAggregation
from localcluster.server import build
from localcluster.settings import Settings
from localcluster.testing import LocalClusterRunner

COLD_STARTS = 3
REQUESTS = 1000
LIST_SIZE = 100
WATCH_EVENTS = 100


def cold_start_seconds(root: Path) -> list[float]:
    """Wall time of `lab up` (CLI start, server start, API answering), each in a new LAB_HOME."""
    times = []
    for attempt in range(COLD_STARTS):
        runner = LocalClusterRunner(root / f"cold-{attempt}")
        started = time.perf_counter()
        runner.__enter__()
        times.append(time.perf_counter() - started)
        runner.__exit__(None, None, None)
    return times


def timed_requests(http, path: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = http.get(path)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return samples


def watch_latencies(cluster: LocalClusterRunner) -> list[float]:
    """Time from sending a create to reading its ADDED event on an open watch."""
    events: queue.Queue[float] = queue.Queue()
    ready = threading.Event()

    def follow() -> None:
        with (
            cluster.http() as http,
            http.stream(
                "GET",
                "/api/v1/namespaces/bookstore/configmaps",
                params={"watch": "true", "labelSelector": "bench=watch", "timeoutSeconds": "60"},
            ) as stream,
        ):
            ready.set()
            seen = 0
            for line in stream.iter_lines():
                if line and json.loads(line)["type"] == "ADDED":
                    events.put(time.perf_counter())
                    seen += 1
                    if seen == WATCH_EVENTS:
                        return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    ready.wait(10)
    latencies = []
    with cluster.http() as http:
        for index in range(WATCH_EVENTS):
            body = {"metadata": {"name": f"watch-{index}", "labels": {"bench": "watch"}}}
            sent = time.perf_counter()
            http.post("/api/v1/namespaces/bookstore/configmaps", json=body).raise_for_status()
            latencies.append(events.get(timeout=10) - sent)
    follower.join(10)
    return latencies


def service_account_token(cluster: LocalClusterRunner) -> str:
    """A token of bookstore/reader, which a RoleBinding lets `view` the namespace."""
    with cluster.http() as http:
        http.post("/api/v1/namespaces/bookstore/serviceaccounts", json={"metadata": {"name": "reader"}})
        binding = {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader"}],
        }
        http.post("/apis/rbac.authorization.k8s.io/v1/namespaces/bookstore/rolebindings", json=binding)
        answer = http.post("/api/v1/namespaces/bookstore/serviceaccounts/reader/token", json={"spec": {}})
        answer.raise_for_status()
        return answer.json()["status"]["token"]


def access_control_microseconds(root: Path) -> dict[str, float]:
    """Authentication, impersonation check and authorization of one GET, in-process, per kind of caller."""
    home = root / "in-process"
    home.mkdir()
    cluster, app = build(Settings(home=home), "admin-token", "127.0.0.1:0")
    access = app.state.access
    middleware = AccessMiddleware(app, access.authenticator, access.authorizer)
    ClusterRoleAggregation(cluster).reconcile([])  # `view` gets its rules (no controllers run here)
    accounts = cluster.registry.get("", "serviceaccounts")
    account = cluster.create(accounts, "v1", "bookstore", {"metadata": {"name": "reader"}}).obj
    token = access.tokens.issue(
        account, audiences=["https://kubernetes.default.svc.cluster.local"], expiration_seconds=3600
    ).token
    bindings = cluster.registry.get("rbac.authorization.k8s.io", "rolebindings")
    cluster.create(
        bindings,
        "v1",
        "bookstore",
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader"}],
        },
    )
    figures = {}
    for caller, credential in (("kubeconfig admin", "admin-token"), ("ServiceAccount", token)):
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/v1/namespaces/bookstore/configmaps/item-0",
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {credential}".encode())],
        }
        middleware.admit(scope)
        started = time.perf_counter()
        for _ in range(REQUESTS * 10):
            middleware.admit(scope)
        figures[caller] = (time.perf_counter() - started) / (REQUESTS * 10) * 1e6
    cluster.store.close()
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as root:
        starts = cold_start_seconds(Path(root))
        report("lab up to API ready median", median(starts), "s")
        report("lab up to API ready max", max(starts), "s")
        with LocalClusterRunner(Path(root) / "main") as cluster:
            server = psutil.Process(cluster.server_pid())
            report("idle RSS after start", server.memory_info().rss / 2**20, "MiB")
            with cluster.http() as http:
                for index in range(LIST_SIZE):
                    body = {"metadata": {"name": f"item-{index}", "labels": {"bench": "list"}}, "data": {"k": "v"}}
                    http.post("/api/v1/namespaces/bookstore/configmaps", json=body).raise_for_status()
                baseline = timed_requests(http, "/version", REQUESTS)
                gets = timed_requests(http, "/api/v1/namespaces/bookstore/configmaps/item-0", REQUESTS)
                lists = timed_requests(
                    http, "/api/v1/namespaces/bookstore/configmaps?labelSelector=bench%3Dlist", REQUESTS // 4
                )
            token = service_account_token(cluster)
            with cluster.http() as http:
                http.headers["Authorization"] = f"Bearer {token}"
                account_gets = timed_requests(http, "/api/v1/namespaces/bookstore/configmaps/item-0", REQUESTS)
            report_latencies("baseline GET /version", baseline)
            report_latencies("GET configmap", gets)
            report_latencies("GET configmap as a ServiceAccount (RBAC)", account_gets)
            report_latencies(f"LIST {LIST_SIZE} configmaps", lists)
            report("GET p50 / baseline p50", percentile(gets, 0.5) / percentile(baseline, 0.5), "x")
            report("ServiceAccount GET p50 / admin GET p50", percentile(account_gets, 0.5) / percentile(gets, 0.5), "x")
            latencies = watch_latencies(cluster)
            report("watch event latency p50", percentile(latencies, 0.5) * 1000, "ms")
            report("watch event latency p99", percentile(latencies, 0.99) * 1000, "ms")
            report("RSS after benchmark", server.memory_info().rss / 2**20, "MiB")
        for caller, microseconds in access_control_microseconds(Path(root)).items():
            report(f"access control per request, {caller}", microseconds, "us")


if __name__ == "__main__":
    main()
