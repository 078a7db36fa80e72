"""Ranking modules: what running module code in its own process costs, and what a bad module costs.

Figures: rank() of the shelf with a bundled module (in the service) and with the same code installed
from source (in the module process), p50/p99 and their ratio; installing a module from source; the
first rank after the module process died (a new process, the module loaded again); the shelf's
answer while the active module hangs (bounded by the rank time limit); the module process's RSS.

Run: python -m bench.bench_modules   (about 15 s; no cluster, no network)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import psutil

from bench._stats import percentile, report, report_latencies
from bookstore.catalog import CATALOG
from bookstore.models import Book
from bookstore.modules.host import ModuleHost, bundled_source

RANKS = 2000
RESTARTS = 10
HANGS = 3
SHELF = [
    Book(id=book.id, title=book.title, price=book.price, stock=10_000 - n, sold=n) for n, book in enumerate(CATALOG)
]
HANGS_ON_LIVE_DATA = (
    "import time\n\ndef rank(books):\n    if books[0]['sold'] == 0:\n        time.sleep(3600)\n    return books\n"
)


async def timed_ranks(host: ModuleHost, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        _, ranking = await host.rank(SHELF)
        samples.append(time.perf_counter() - started)
        assert ranking is not None and ranking.error is None, ranking
    return samples


async def measure() -> None:
    host = ModuleHost()
    await host.start("by-sales")
    try:
        in_service = await timed_ranks(host, RANKS)
        started = time.perf_counter()
        await host.install("by-sales-source", "1", source=bundled_source("by-sales"))
        report("install a module from source (first: starts the module process)", time.perf_counter() - started, "s")
        started = time.perf_counter()
        await host.install("by-sales-again", "1", source=bundled_source("by-sales"))
        report("install a module from source (process running)", (time.perf_counter() - started) * 1000, "ms")
        await host.activate("by-sales-source", "1")
        in_process = await timed_ranks(host, RANKS)
        report_latencies("rank, bundled module in the service", in_service)
        report_latencies("rank, same code from source in the module process", in_process)
        report("module process / in the service (p50)", percentile(in_process, 0.5) / percentile(in_service, 0.5), "x")

        pid = host.sandbox.pid
        assert pid is not None
        report("module process RSS", psutil.Process(pid).memory_info().rss / 2**20, "MiB")
        restarts = []
        for _ in range(RESTARTS):
            os.kill(host.sandbox.pid or 0, signal.SIGKILL)
            await host.rank(SHELF)  # notices the death: that request is served in catalogue order
            restarts += await timed_ranks(host, 1)
        report(
            "first rank after the module process died (new process + reload)", percentile(restarts, 0.5) * 1000, "ms"
        )

        await host.install("hangs", "1", source=HANGS_ON_LIVE_DATA)
        await host.activate("hangs", "1")
        hung = []
        for _ in range(HANGS):
            started = time.perf_counter()
            _, ranking = await host.rank([book.model_copy(update={"sold": 0}) for book in SHELF])
            hung.append(time.perf_counter() - started)
            assert ranking is not None and ranking.error is not None
        report("shelf answer while the active module hangs (p50)", percentile(hung, 0.5), "s")
    finally:
        await host.close()


def main() -> None:
    logging.getLogger("bookstore.modules").setLevel(logging.ERROR)  # the failures below are on purpose
    print("(timings on a shared machine are noisy: compare ratios within one run)", flush=True)
    asyncio.run(measure())


if __name__ == "__main__":
    main()
