"""The bookstore on localcluster: a purchase from the monolith vs. through the microservices, and a module switch.

One run starts a localcluster in a temporary LAB_HOME, deploys labs 01 and 02 (their own solution
steps), then measures, through the service proxy as a notebook calls them:

* purchase latency p50/p99 and sequential throughput, monolith and storefront alternating so both
  see the same machine load;
* what one proxy hop costs (GET /health on the stock pod, direct vs. through the proxy), and so the
  proxy's share of the storefront's extra latency (it makes one hop per call to stock or balance);
* the time to switch the storefront's ranking module (from the activate call until a shelf is
  served in the new order; target under 100 ms), with a load loop on the shelf running across
  every switch, and how many of its requests failed (target 0).

    python -m bench.bench_bookstore [--purchases 200] [--switches 10]

prints plain `name: value unit` lines. Request counts are bounded; everything stays on loopback.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import httpx

from bench._cluster import bookstore_cluster
from bench._stats import percentile, report, report_latencies

BUYER = "bench"
PURCHASE = {"user": BUYER, "book": "00002", "count": 1}
MONOLITH = "http://monolith"
STOREFRONT = "http://storefront"
#: The load loop's bound: it stops at this many requests even if the switches are not done.
MAX_LOAD_REQUESTS = 20_000
SWITCH_TIMEOUT = 5.0
#: Shelf requests the load loop makes between two switches (and before the first, after the last).
LOAD_PER_SWITCH = 20


def timed(call: Callable[[], httpx.Response], expected: int) -> float:
    started = time.perf_counter()
    answer = call()
    elapsed = time.perf_counter() - started
    if answer.status_code != expected:
        raise RuntimeError(f"{answer.request.method} {answer.request.url} answered {answer.status_code}: {answer.text}")
    return elapsed


def bench_purchases(http: httpx.Client, purchases: int) -> dict[str, list[float]]:
    """Purchase latencies of the monolith and the storefront, alternating."""
    for url in (MONOLITH, STOREFRONT):
        http.post(f"{url}/api/users", json={"name": BUYER})
        http.post(f"{url}/api/purchase", json=PURCHASE).raise_for_status()  # warm connections and caches
    samples: dict[str, list[float]] = {MONOLITH: [], STOREFRONT: []}
    for _ in range(purchases):
        for url, seconds in samples.items():
            seconds.append(timed(lambda url=url: http.post(f"{url}/api/purchase", json=PURCHASE), 201))
    return samples


def proxy_hop_seconds(http: httpx.Client, pod_address: str, requests: int) -> float:
    """p50 of GET /health through the proxy minus p50 straight to the pod: what one hop adds."""
    direct, proxied = [], []
    with httpx.Client(trust_env=False, timeout=10) as straight:
        for _ in range(requests):
            direct.append(timed(lambda: straight.get(f"http://{pod_address}/health"), 200))
            proxied.append(timed(lambda: http.get("http://stock/health"), 200))
    return percentile(proxied, 0.5) - percentile(direct, 0.5)


def hops_per_purchase(http: httpx.Client) -> int:
    """How many calls the storefront makes for one purchase, from that purchase's trace."""
    from bookstore.calltree import collect_trace
    from labkit.traces import start_trace

    trace = start_trace()
    http.post(f"{STOREFRONT}/api/purchase", json=PURCHASE, headers=trace.headers).raise_for_status()
    tree = collect_trace(trace.trace_id, [STOREFRONT, "http://stock", "http://balance"], client=http)
    return len(tree.spans()) - len(tree.roots)


def bench_switches(http: httpx.Client, admin: dict[str, str], switches: int) -> tuple[list[float], int, int]:
    """Seconds per switch (activate until the shelf shows it) under a load loop; (times, requests, failures).

    `admin` holds the admin token's header, as `labkit.admin_headers()` gives it.
    """
    for name in ("by-price", "by-stock"):
        install = {"name": name, "version": "1.0.0", "bundled": name}
        http.post(f"{STOREFRONT}/admin/modules", json=install, headers=admin)
    stop = threading.Event()
    progress = threading.Condition()
    counts = {"requests": 0, "failures": 0}

    def load() -> None:
        # httpx clients are thread-safe: the loop shares the connection's proxy route and pool.
        while not stop.is_set() and counts["requests"] < MAX_LOAD_REQUESTS:
            try:
                failed = http.get(f"{STOREFRONT}/api/books").status_code != 200
            except httpx.HTTPError:
                failed = True
            with progress:
                counts["requests"] += 1
                counts["failures"] += failed
                progress.notify_all()

    def load_made(requests: int) -> None:
        """Let the loop make `requests` more requests, so load runs before, across and after each switch."""
        with progress:
            target = counts["requests"] + requests
            if not progress.wait_for(lambda: counts["requests"] >= target, timeout=30):
                raise TimeoutError(f"the load loop made only {counts['requests']} requests")

    loop = threading.Thread(target=load, name="shelf-load", daemon=True)
    loop.start()
    seconds = []
    try:
        for index in range(switches):
            load_made(LOAD_PER_SWITCH)
            module = ("by-price", "by-stock")[index % 2]
            started = time.perf_counter()
            http.post(f"{STOREFRONT}/admin/modules/{module}/1.0.0/activate", headers=admin).raise_for_status()
            while http.get(f"{STOREFRONT}/api/books").json()["ranking"]["module"] != module:
                if time.perf_counter() - started > SWITCH_TIMEOUT:
                    raise TimeoutError(f"the shelf did not show {module} within {SWITCH_TIMEOUT}s")
            seconds.append(time.perf_counter() - started)
        load_made(LOAD_PER_SWITCH)
    finally:
        stop.set()
        loop.join(timeout=30)
    return seconds, counts["requests"], counts["failures"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=200, help="purchases per side (bounded)")
    parser.add_argument("--switches", type=int, default=10, help="module switches under load")
    args = parser.parse_args(argv)
    if not 1 <= args.purchases <= 2000 or not 1 <= args.switches <= 100:
        parser.error("--purchases must be 1..2000 and --switches 1..100")

    from checkers import solve
    from checkers.lab01_monolith import look_at_deployment
    from labkit.admin import admin_headers

    with bookstore_cluster("bench-bookstore-") as (_cluster, ctx):
        started = time.perf_counter()
        solve(ctx, "01.2")
        solve(ctx, "02.2")
        report("deploy monolith and microservices", time.perf_counter() - started, "s")
        samples = bench_purchases(ctx.http, args.purchases)
        report_latencies("purchase monolith", samples[MONOLITH])
        report_latencies("purchase microservices", samples[STOREFRONT])
        extra = percentile(samples[STOREFRONT], 0.5) - percentile(samples[MONOLITH], 0.5)
        report("purchase microservices extra p50", extra * 1000, "ms")
        (stock_pod,) = look_at_deployment(ctx, "stock").ready_pods
        pod = ctx.core.read_namespaced_pod(stock_pod.name, ctx.namespace)
        hop = proxy_hop_seconds(ctx.http, f"{pod.status.pod_ip}:8080", min(args.purchases, 200))
        hops = hops_per_purchase(ctx.http)
        report("proxy hop p50", hop * 1000, "ms")
        report("proxy hops per microservices purchase", hops, "hops")
        report("proxy share of the extra p50", 100 * hops * hop / extra if extra > 0 else 0.0, "%")
        switch_seconds, requests, failures = bench_switches(ctx.http, admin_headers(ctx), args.switches)
        report("module switch p50", percentile(switch_seconds, 0.5) * 1000, "ms")
        report("module switch max", max(switch_seconds) * 1000, "ms")
        report("shelf requests during switches", requests, "requests")
        report("failed requests during switches", failures, "requests")


if __name__ == "__main__":
    main()
