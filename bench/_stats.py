"""Small statistics helpers shared by the benchmarks."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def report(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.3f} {unit}", flush=True)


def report_latencies(name: str, seconds: list[float]) -> None:
    """p50 and p99 in milliseconds, and the sequential rate they imply."""
    report(f"{name} p50", percentile(seconds, 0.5) * 1000, "ms")
    report(f"{name} p99", percentile(seconds, 0.99) * 1000, "ms")
    report(f"{name} rate", len(seconds) / sum(seconds), "requests/s")


def median(values: list[float]) -> float:
    return statistics.median(values)
