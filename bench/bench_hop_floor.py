"""The floor under the purchase ratios: the purchase path's shapes with empty endpoints, beside the monolith.

Issue 9 asks a microservices purchase for at most 2x the monolith's p50 without the coordinator and
3x with it. ``bench_transactions`` measures the bookstore's own purchases; this measures the same
shapes on the same stack with nothing inside (``bench._floor_app``: FastAPI with the bookstore's
middlewares, uvicorn with httptools, the storefront's client):

* one exchange: the client's call answered at once (the monolith's shape);
* lab 02's purchase: the client's call, in which balance, then stock;
* lab 03's purchase: the client's call, in which tc, then stock and balance together, then tc.

A services purchase does at least the monolith's work (the same rows, split over two databases) plus
its extra exchanges, so its p50 ratio to the monolith is at least ``1 + (shape - one exchange) / monolith``
whatever its code does. That bound is printed for two networks:

* localcluster: four Deployments and Services; the client reaches the front through the service
  proxy, as a notebook does, and the front reaches the others as the bookstore's pods do (their
  network shim connects straight to a Ready endpoint, as kube-proxy's kernel rules would); the
  shapes alternate with lab 01's monolith purchase, so all see the same machine load;
* plain processes: the same app in four processes on loopback calling each other's addresses, the
  client too, with no proxy anywhere; the monolith's p50 from the first run is the denominator.

    python -m bench.bench_hop_floor [--calls 300]

prints plain `name: value unit` lines. Request counts are bounded; everything stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench._cluster import bookstore_cluster
from bench._floor_app import ANSWER, SEQUENCE, TRANSACTION
from bench._stats import percentile, report, report_latencies

#: The floor app's Deployments, by the service each stands in for, and the storefront setting that names it.
PARTS = {"floor-stock": "BOOKSTORE_STOCK_URL", "floor-balance": "BOOKSTORE_BALANCE_URL", "floor-tc": "BOOKSTORE_TC_URL"}
FRONT = "floor"
STANDS_IN_FOR = {FRONT: "storefront", "floor-stock": "stock", "floor-balance": "balance", "floor-tc": "tc"}
#: Where ``bench`` can be imported from: pods and child processes run ``python -m bench._floor_app``.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
ONE = "one exchange"
SHAPES = {ONE: ANSWER, "lab 02 shape": SEQUENCE, "lab 03 shape": TRANSACTION}
MONOLITH = "monolith purchase"
BODY = {"user": "bench", "book": "00002", "count": 1}
WARM_UP = 20
_LISTENING = re.compile(r"listening on (http://\S+)")


def alternating(http: httpx.Client, urls: dict[str, str], calls: int) -> dict[str, list[float]]:
    """Seconds per POST to each of ``urls`` (name: URL), in turn, so all see the same machine load."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    for turn in range(calls + WARM_UP):
        for name, url in urls.items():
            started = time.perf_counter()
            answer = http.post(url, json=BODY)
            elapsed = time.perf_counter() - started
            if not answer.is_success:
                raise RuntimeError(f"POST {url} answered {answer.status_code}: {answer.text}")
            if turn >= WARM_UP:  # the first calls warm connections and code paths
                samples[name].append(elapsed)
    return samples


def report_bounds(network: str, samples: dict[str, list[float]], monolith: float) -> None:
    """Each shape's latencies and the least p50 ratio to the monolith (``monolith`` seconds) it allows."""
    for shape in SHAPES:
        report_latencies(f"floor {network}, {shape}", samples[shape])
    one = percentile(samples[ONE], 0.5)
    for shape in list(SHAPES)[1:]:
        extra = percentile(samples[shape], 0.5) - one
        report(f"floor {network}, {shape}: p50 of its extra exchanges", extra * 1000, "ms")
        report(f"floor {network}, {shape}: least p50 ratio to the monolith", 1 + extra / monolith, "x")


def floor_manifests() -> list[dict[str, Any]]:
    """The front and its three parts as Deployments with Services, running the floor app."""
    from localcluster.settings import PROJECT_IMAGE

    front_env = [{"name": variable, "value": f"http://{name}"} for name, variable in PARTS.items()]
    manifests: list[dict[str, Any]] = []
    for name in (FRONT, *PARTS):
        env = [
            {"name": "PYTHONPATH", "value": PROJECT_ROOT},
            {"name": "FLOOR_SERVICE", "value": STANDS_IN_FOR[name]},
            *(front_env if name == FRONT else []),
        ]
        container = {
            "name": "app",
            "image": PROJECT_IMAGE,
            "command": ["python", "-m", "bench._floor_app"],
            "env": env,
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
        }
        labels = {"app": name}
        manifests.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
                },
            }
        )
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
    return manifests


def on_localcluster(calls: int) -> dict[str, list[float]]:
    """The shapes on localcluster (the front through the service proxy), each in turn with a monolith purchase."""
    from checkers import solve
    from checkers.lab01_monolith import wait_until_reachable, wait_until_ready
    from labkit import apply

    with bookstore_cluster("bench-floor-") as (_cluster, ctx):
        solve(ctx, "01.2")
        apply(floor_manifests(), connection=ctx)
        wait_until_ready(ctx, [FRONT, *PARTS])
        wait_until_reachable(ctx, [FRONT, *PARTS])
        ctx.http.post("http://monolith/api/users", json={"name": BODY["user"]})
        urls = {MONOLITH: "http://monolith/api/purchase"}
        urls.update({shape: f"http://{FRONT}{path}" for shape, path in SHAPES.items()})
        return alternating(ctx.http, urls, calls)


@contextmanager
def plain_process(environment: dict[str, str]) -> Iterator[str]:
    """The floor app in a process of its own on 127.0.0.1 (a port the OS picks): yields its URL."""
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy", "pythonpath")},
        "PYTHONPATH": PROJECT_ROOT,
        "NO_PROXY": "*",
        "BIND": "127.0.0.1",
        "PORT": "0",
        **environment,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._floor_app"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the first log line says where it listens
            found = _LISTENING.search(line)
            if found:
                break
        else:
            raise RuntimeError(f"the floor app did not start (exit code {process.wait()})")
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def in_plain_processes(calls: int) -> dict[str, list[float]]:
    with ExitStack() as stack, httpx.Client(trust_env=False) as http:
        urls = {
            variable: stack.enter_context(plain_process({"FLOOR_SERVICE": STANDS_IN_FOR[name]}))
            for name, variable in PARTS.items()
        }
        front = stack.enter_context(plain_process({**urls, "FLOOR_SERVICE": STANDS_IN_FOR[FRONT]}))
        return alternating(http, {shape: f"{front}{path}" for shape, path in SHAPES.items()}, calls)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls of each shape per network (bounded)")
    args = parser.parse_args(argv)
    if not 10 <= args.calls <= 3000:
        parser.error("--calls must be 10..3000")
    on_cluster = on_localcluster(args.calls)
    report_latencies(MONOLITH, on_cluster[MONOLITH])
    monolith = percentile(on_cluster[MONOLITH], 0.5)
    report_bounds("on localcluster", on_cluster, monolith)
    report_bounds("in plain processes, no proxy", in_plain_processes(args.calls), monolith)
    report("load average (1 min) at the end", os.getloadavg()[0], "")


if __name__ == "__main__":
    main()
