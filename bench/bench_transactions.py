"""Purchases with and without the coordinator, against the monolith, and how fast tc recovers.

One run starts a localcluster in a temporary LAB_HOME, deploys lab 01 (the monolith) and lab 03 (the
services in lab mode, and tc) with their own solution steps, then measures through the service
proxy, as a notebook calls them:

* purchase latency p50/p99, one at a time, the storefront alternating with the monolith so both see
  the same machine load: first without tc (lab 02's purchase), then with tc (a global transaction).
  tc drives phase two after the storefront's answer: each monolith purchase waits (untimed) until it
  is over, so the monolith is not timed beside the services' own confirms (it has none of its own);
* purchases per second with ``--clients`` concurrent clients, for each of the three;
* the ratios of each to the monolith (the targets: at most 2x without tc, 3x with);
* CPU time per purchase in each process of the path (localcluster's, which holds the service proxy,
  and each bookstore pod's), from purchases in a row, and the CPU ratios: CPU time is what a loaded
  machine does not inflate, while wall-clock suffers more where more processes take turns;
* recovery: stock is scaled to 0 while purchases run (tc cannot tell it the outcome), then back to 1;
  the time from its pod being Ready again to every transaction resolved.

    python -m bench.bench_transactions [--purchases 200] [--clients 8]

prints plain `name: value unit` lines. Request counts are bounded; everything stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import psutil

from bench._cluster import bookstore_cluster
from bench._stats import percentile, report, report_latencies

if TYPE_CHECKING:
    from checkers import Context

MONOLITH = "http://monolith"
STOREFRONT = "http://storefront"
BUYER = "bench"
PURCHASE = {"user": BUYER, "book": "00002", "count": 1}
#: The bookstore's processes, by the module their pod runs.
POD_MODULES = {
    "monolith": "bookstore.monolith",
    "storefront": "bookstore.services.storefront",
    "stock": "bookstore.services.stock",
    "balance": "bookstore.services.balance",
    "tc": "bookstore.services.tc",
}
#: The pods a purchase passes through, besides localcluster's process (the service proxy).
MONOLITH_PATH = ("monolith",)
SERVICES_PATH = ("storefront", "stock", "balance", "tc")
#: Seconds over which localcluster's own idle CPU rate (API server, controllers, probes) is measured.
IDLE_SECONDS = 2.0


def timed_purchase(http: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    answer = http.post(f"{url}/api/purchase", json=PURCHASE)
    elapsed = time.perf_counter() - started
    if answer.status_code != 201:
        raise RuntimeError(f"POST {url}/api/purchase answered {answer.status_code}: {answer.text}")
    return elapsed


def alternating(
    http: httpx.Client, purchases: int, *, settled: Callable[[], bool] = lambda: True
) -> dict[str, list[float]]:
    """Latencies of the monolith and the storefront, one purchase each in turn.

    Each monolith purchase starts once ``settled()`` (tc's phase two of the storefront's last purchase).
    """
    from labkit import wait_for

    for url in (MONOLITH, STOREFRONT):
        http.post(f"{url}/api/users", json={"name": BUYER})
        timed_purchase(http, url)  # warm connections and caches
    samples: dict[str, list[float]] = {MONOLITH: [], STOREFRONT: []}
    for _ in range(purchases):
        wait_for(settled, what="the last purchase's phase two", timeout=60)
        samples[MONOLITH].append(timed_purchase(http, MONOLITH))
        samples[STOREFRONT].append(timed_purchase(http, STOREFRONT))
    return samples


def throughput(http: httpx.Client, url: str, purchases: int, clients: int) -> float:
    """Purchases per second with ``clients`` concurrent clients."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: timed_purchase(http, url), range(purchases)))
    return purchases / (time.perf_counter() - started)


def path_processes(server_pid: int, pods: tuple[str, ...]) -> dict[str, psutil.Process]:
    """localcluster's process (the service proxy, beside the API server and kubelet) and the ``pods``' processes."""
    found = {"localcluster": psutil.Process(server_pid)}
    for child in found["localcluster"].children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        for name in pods:
            if POD_MODULES[name] in command:
                found.setdefault(name, child)
    return found


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """User plus system CPU seconds of each process (its threads included) so far."""
    return {name: sum(process.cpu_times()[:2]) for name, process in processes.items()}


def cpu_per_purchase(
    http: httpx.Client,
    url: str,
    purchases: int,
    server_pid: int,
    pods: tuple[str, ...],
    *,
    settled: Callable[[], bool] = lambda: True,
) -> dict[str, float]:
    """Milliseconds of CPU per purchase in each process of the path, over ``purchases`` in a row.

    Counted until ``settled()`` (tc's phase two runs after the answer). localcluster's process also
    serves the API, runs controllers and probes: its idle rate, measured just before, is subtracted.
    """
    from labkit import wait_for

    processes = path_processes(server_pid, pods)
    idle_before = cpu_seconds(processes)["localcluster"]
    time.sleep(IDLE_SECONDS)
    idle_rate = (cpu_seconds(processes)["localcluster"] - idle_before) / IDLE_SECONDS
    before, started = cpu_seconds(processes), time.perf_counter()
    for _ in range(purchases):
        timed_purchase(http, url)
    wait_for(settled, what="every transaction to be resolved", timeout=60)
    after, elapsed = cpu_seconds(processes), time.perf_counter() - started
    spent = {name: after[name] - before[name] for name in processes}
    spent["localcluster"] = max(0.0, spent["localcluster"] - idle_rate * elapsed)
    return {name: seconds * 1000 / purchases for name, seconds in spent.items()}


def report_cpu(label: str, per_process: dict[str, float]) -> float:
    """Print each process's CPU per purchase; returns the total."""
    for name, milliseconds in per_process.items():
        report(f"CPU per purchase, {label}, {name}", milliseconds, "ms")
    total = sum(per_process.values())
    report(f"CPU per purchase, {label}, all processes", total, "ms")
    return total


def recovery_seconds(ctx: Context, http: httpx.Client, purchases: int) -> tuple[float, int]:
    """Scale stock to 0 under purchases, back to 1: seconds from its Ready pod to every transaction resolved."""
    from checkers.lab01_monolith import look_at_deployment, wait_until_ready
    from checkers.lab03_transactions import PurchaseLoad, look_at_coordinator
    from labkit import wait_for

    ctx.apps.patch_namespaced_deployment_scale("stock", ctx.namespace, {"spec": {"replicas": 0}})
    wait_for(lambda: not look_at_deployment(ctx, "stock").pods, what="stock to have no pod", timeout=60)
    PurchaseLoad(http, [BUYER], purchases=purchases, concurrency=4).run()
    waiting = look_at_coordinator(http).unfinished
    ctx.apps.patch_namespaced_deployment_scale("stock", ctx.namespace, {"spec": {"replicas": 1}})
    wait_until_ready(ctx, ["stock"])
    back = time.perf_counter()
    wait_for(lambda: look_at_coordinator(http).unfinished == 0, what="tc to resolve every transaction", timeout=120)
    return time.perf_counter() - back, waiting


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=200, help="purchases per side (bounded)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for throughput")
    args = parser.parse_args(argv)
    if not 10 <= args.purchases <= 2000 or not 1 <= args.clients <= 32:
        parser.error("--purchases must be 10..2000 and --clients 1..32")

    from checkers import solve
    from checkers.lab03_transactions import TC_URL, look_at_coordinator, set_storefront_coordinator

    with bookstore_cluster("bench-txn-") as (cluster, ctx):
        solve(ctx, "01.2")
        solve(ctx, "03.1")
        solve(ctx, "03.3")
        http = ctx.http
        server_pid = cluster.server_pid()
        ratios: dict[str, float] = {}
        cpu_ratios: dict[str, float] = {}
        rates: dict[str, float] = {}

        def measure(label: str, settled: Callable[[], bool] = lambda: True) -> None:
            samples = alternating(http, args.purchases, settled=settled)
            report_latencies(f"purchase monolith (beside {label})", samples[MONOLITH])
            report_latencies(f"purchase {label}", samples[STOREFRONT])
            ratios[label] = percentile(samples[STOREFRONT], 0.5) / percentile(samples[MONOLITH], 0.5)
            monolith_cpu = report_cpu(
                f"monolith (beside {label})",
                cpu_per_purchase(http, MONOLITH, args.purchases, server_pid, MONOLITH_PATH),
            )
            services_cpu = report_cpu(
                label,
                cpu_per_purchase(http, STOREFRONT, args.purchases, server_pid, SERVICES_PATH, settled=settled),
            )
            cpu_ratios[label] = services_cpu / monolith_cpu
            rates[label] = throughput(http, STOREFRONT, args.purchases, args.clients)

        measure("services without tc")
        set_storefront_coordinator(ctx, TC_URL)
        measure("services with tc", settled=lambda: look_at_coordinator(http, limit=1).unfinished == 0)
        rates["monolith"] = throughput(http, MONOLITH, args.purchases, args.clients)
        for label, rate in rates.items():
            report(f"purchases/s with {args.clients} clients, {label}", rate, "purchases/s")
        for label, ratio in ratios.items():
            report(f"p50 ratio to the monolith, {label}", ratio, "x")
        for label, ratio in cpu_ratios.items():
            report(f"CPU per purchase ratio to the monolith, {label}", ratio, "x")
        report("load average (1 min) at the end", os.getloadavg()[0], "")
        seconds, waiting = recovery_seconds(ctx, http, 20)
        report("transactions waiting on stock while it was gone", waiting, "transactions")
        report("stock Ready again to every transaction resolved", seconds, "s")


if __name__ == "__main__":
    main()
