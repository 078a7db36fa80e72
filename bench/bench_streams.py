"""exec and port-forward benchmark against a real localcluster in a temporary LAB_HOME.

Prints, as `name: value unit` lines: `kubectl exec POD -- true` wall time (p50, p99: kubectl's
start, discovery and the WebSocket session), an exec session's round trip through the official
Python client (`v5.channel.k8s.io`, no process start of kubectl), and HTTP requests per second
through one `kubectl port-forward` (a new SPDY stream pair per connection, tunnelled through one
WebSocket) against the same requests straight to the pod's address, with their ratio.

    .venv/bin/python -m bench.bench_streams [--samples 20] [--requests 200]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import kubernetes
from kubernetes.client import CoreV1Api
from kubernetes.stream import stream

from bench._stats import report, report_latencies
from bench.bench_pods import http_pod, is_ready, lab, wait_until

NAMESPACE = "default"
KUBECTL = Path(sys.executable).with_name("kubectl")


def requests_per_second(url: str, count: int) -> float:
    with httpx.Client(trust_env=False, timeout=10) as client:
        started = time.perf_counter()
        for _ in range(count):
            client.get(url, headers={"Connection": "close"}).raise_for_status()
        return count / (time.perf_counter() - started)


def run(home: Path, samples: int, requests: int) -> None:
    lab(home, "up")
    kubeconfig = str(home / "kubeconfig")
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    core = CoreV1Api(client)
    try:
        core.create_namespaced_pod(NAMESPACE, http_pod("target"))
        wait_until(lambda: is_ready(core.read_namespaced_pod("target", NAMESPACE)), "pod target Ready")
        kubectl = [str(KUBECTL), "--kubeconfig", kubeconfig, "-n", NAMESPACE]
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            subprocess.run([*kubectl, "exec", "target", "--", "true"], check=True, capture_output=True)
            timings.append(time.perf_counter() - started)
        report_latencies("kubectl exec true", timings)
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            stream(core.connect_get_namespaced_pod_exec, "target", NAMESPACE, command=["true"], stdout=True)
            timings.append(time.perf_counter() - started)
        report_latencies("python client exec true", timings)

        pod_ip = core.read_namespaced_pod("target", NAMESPACE).status.pod_ip
        direct = requests_per_second(f"http://{pod_ip}:8080/", requests)
        with subprocess.Popen(
            [*kubectl, "port-forward", "pod/target", ":8080"], stdout=subprocess.PIPE, text=True
        ) as forward:
            try:
                assert forward.stdout is not None
                match = re.search(r"127\.0\.0\.1:(\d+)", forward.stdout.readline())
                if match is None:
                    raise SystemExit("kubectl port-forward did not say where it listens")
                forwarded = requests_per_second(f"http://127.0.0.1:{match.group(1)}/", requests)
            finally:
                forward.terminate()
        report("HTTP direct to the pod", direct, "requests/s")
        report("HTTP through kubectl port-forward", forwarded, "requests/s")
        report("port-forward / direct", forwarded / direct, "ratio")
    finally:
        client.close()
        lab(home, "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as home:
        run(Path(home), args.samples, args.requests)


if __name__ == "__main__":
    main()
