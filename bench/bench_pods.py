"""Pod start-up benchmark against a real localcluster in a temporary LAB_HOME.

Prints, as `name: value unit` lines: create -> Ready latency (p50, p95) of a minimal HTTP pod, the
time for 20 such pods created at once to all be Ready, and the server's RSS with those 20 running.

    .venv/bin/python -m bench.bench_pods [--samples 10] [--pods 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kubernetes
import psutil
from kubernetes.client import CoreV1Api

from bench._stats import percentile, report
from localcluster.settings import PROJECT_IMAGE

NAMESPACE = "default"
POLL_SECONDS = 0.01


def lab(home: Path, *args: str) -> None:
    env = {**os.environ, "LAB_HOME": str(home)}
    env.pop("KUBECONFIG", None)
    subprocess.run([sys.executable, "-m", "localcluster.cli", *args], env=env, check=True, capture_output=True)


def http_pod(name: str) -> dict[str, object]:
    container = {"name": "web", "image": PROJECT_IMAGE, "command": ["python", "-m", "http.server", "8080"]}
    return {"metadata": {"name": name, "labels": {"bench": "pods"}}, "spec": {"containers": [container]}}


def is_ready(pod: kubernetes.client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def run(home: Path, samples: int, pods: int) -> None:
    lab(home, "up")
    client = kubernetes.config.new_client_from_config(config_file=str(home / "kubeconfig"))
    core = CoreV1Api(client)
    try:
        latencies = []
        for index in range(samples):
            name = f"single-{index}"
            started = time.perf_counter()
            core.create_namespaced_pod(NAMESPACE, http_pod(name))
            wait_until(lambda n=name: is_ready(core.read_namespaced_pod(n, NAMESPACE)), f"pod {name} Ready")
            latencies.append(time.perf_counter() - started)
            core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        report("pod create to Ready p50", percentile(latencies, 0.50) * 1000, "ms")
        report("pod create to Ready p95", percentile(latencies, 0.95) * 1000, "ms")

        started = time.perf_counter()
        for index in range(pods):
            core.create_namespaced_pod(NAMESPACE, http_pod(f"many-{index}"))

        def all_ready() -> bool:
            listed = core.list_namespaced_pod(NAMESPACE, label_selector="bench=pods").items
            return sum(1 for pod in listed if pod.metadata.name.startswith("many-") and is_ready(pod)) == pods

        wait_until(all_ready, f"{pods} pods Ready")
        report(f"{pods} pods created to all Ready", time.perf_counter() - started, "s")
        server = psutil.Process(json.loads((home / "localcluster.json").read_text())["pid"])
        report(f"localcluster RSS with {pods} pods", server.memory_info().rss / 2**20, "MiB")
    finally:
        client.close()
        lab(home, "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="single pods timed one after another")
    parser.add_argument("--pods", type=int, default=20, help="pods created at once")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as home:
        run(Path(home), arguments.samples, arguments.pods)


if __name__ == "__main__":
    main()
