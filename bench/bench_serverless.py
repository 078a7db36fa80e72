"""Lab 04's storefront as a Knative Service on a real localcluster: cold starts, path costs, scale-out.

Prints `name: value unit` lines (and `trial i/n` progress lines while it runs):

- cold start (a request at zero -> its answer), p50 and p99 over `--trials` trials, and where the
  time goes, each phase timed from watch events and a direct probe of the new pod: the autoscaler
  scaling the revision's Deployment (the activator's poke, the KPA's decision), the Deployment and
  ReplicaSet controllers creating the pod (scheduling), the kubelet starting its process group (pod
  Running with an address), the process starting (interpreter, the storefront's imports, its app,
  its port bound: the first direct answer), then the activator's hand-off (its own probe of the pod,
  forwarding the held request); beside it the storefront started alone, with its imports alone and
  the bare interpreter;
- warm latency of GET /health: straight to the pod, through the proxy as a plain Service (the
  revision's private Service: kube-proxy's part), and through the Knative route (the path every
  Knative request takes here, the proxy playing the activator and queue-proxy: route, split, lease,
  pod choice), with what each path adds to the direct call;
- scale-out reaction to a step of load (0 -> `--clients` clients on one warm pod): seconds until the
  autoscaler scales the Deployment up, and until a second pod is Ready.

    python -m bench.bench_serverless [--trials 20] [--warm 300] [--clients 8]

So that a trial does not wait out upstream's 30 s grace period before the next one, the bench's own
cluster sets `scale-to-zero-grace-period` to 1 s in `config-autoscaler` (the revision keeps the
lab's 6 s window); nothing measured depends on it. Bounded: every wait has a deadline; about
five minutes in all on 2 cores. The machine may be shared: figures are what it gave at the time,
to compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import kubernetes

from bench._stats import percentile, report
from localcluster.testing import LocalClusterRunner

NAMESPACE = "bookstore"
SERVICE = "storefront"
GROUP, VERSION = "serving.knative.dev", "v1"
#: The storefront's containerPort in lab 04's manifests.
PORT = 8080
URL = f"http://{SERVICE}.{NAMESPACE}.svc.cluster.local"
#: The lab's autoscaling: the shortest stable window Knative allows, and a target of 2 in flight.
WINDOW = {"autoscaling.knative.dev/window": "6s", "autoscaling.knative.dev/target": "2"}
GRACE = "1s"
#: How often the bench's own probe knocks on a new pod's port (a refused connect costs microseconds).
PROBE_INTERVAL = 0.002
#: Bounds: waiting for zero between trials, for a cold answer, for a scale-out.
ZERO_TIMEOUT = 120.0
COLD_TIMEOUT = 60.0
SCALE_TIMEOUT = 90.0

Objects = dict[str, Any]  # the watched objects still present, by name


def storefront(annotations: dict[str, str]) -> dict[str, Any]:
    """Lab 04's storefront manifest with the given template annotations."""
    from checkers.lab04_serverless import AUTOSCALING, lesson

    (obj,) = lesson(AUTOSCALING)
    obj["metadata"]["namespace"] = NAMESPACE
    obj["spec"]["template"]["metadata"]["annotations"] = annotations
    return obj


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def running(pod: Any) -> bool:
    return pod.status.phase == "Running" and bool(pod.status.pod_ip) and not pod.metadata.deletion_timestamp


def replicas(deployments: Objects) -> int:
    return max((d.spec.replicas or 0 for d in deployments.values()), default=0)


class Timeline:
    """A watch in a thread: the first moment (this process's monotonic clock) each named test held.

    Each test sees every watched object still present, as the events have left them. The thread
    ends when every test has held, when `stop()` is called, or after `limit` seconds.
    """

    def __init__(
        self,
        list_call: Callable[..., Any],
        tests: dict[str, Callable[[Objects], bool]],
        limit: float,
        **selectors: str,
    ) -> None:
        self.tests = tests
        self.seen: dict[str, float] = {}
        self.objects: Objects = {}
        self._stopped = threading.Event()
        self._watch = kubernetes.watch.Watch()
        listed = list_call(NAMESPACE, **selectors)
        self.objects = {item.metadata.name: item for item in listed.items}
        self._mark(time.monotonic())
        self._thread = threading.Thread(
            target=self._run,
            args=(list_call, listed.metadata.resource_version, limit, selectors),
            daemon=True,
        )
        if len(self.seen) < len(self.tests):
            self._thread.start()

    def _run(self, list_call: Callable[..., Any], since: str, limit: float, selectors: dict[str, str]) -> None:
        stream = self._watch.stream(
            list_call, NAMESPACE, resource_version=since, timeout_seconds=int(limit) + 1, **selectors
        )
        for event in stream:
            now = time.monotonic()
            obj = event["object"]
            if event["type"] == "DELETED":
                self.objects.pop(obj.metadata.name, None)
            else:
                self.objects[obj.metadata.name] = obj
            self._mark(now)
            if self._stopped.is_set() or len(self.seen) == len(self.tests):
                self._watch.stop()

    def _mark(self, now: float) -> None:
        for name, test in self.tests.items():
            if name not in self.seen and test(self.objects):
                self.seen[name] = now

    def wait(self, name: str, timeout: float) -> float:
        """The moment test `name` first held, once it has (SystemExit after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while name not in self.seen:
            if time.monotonic() > deadline or (self._thread.ident and not self._thread.is_alive()):
                raise SystemExit(f"timed out after {timeout:.0f} s waiting for: {name}")
            time.sleep(0.01)
        return self.seen[name]

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.ident:
            self._thread.join(5)


class Bench:
    def __init__(self, cluster: LocalClusterRunner) -> None:
        self.cluster = cluster
        api = cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        proxy = json.loads((cluster.home / "localcluster.json").read_text())["proxy"]
        self.http = httpx.Client(
            proxy=proxy, timeout=120, trust_env=False, headers={"x-localcluster-namespace": NAMESPACE}
        )
        self.direct = httpx.Client(timeout=30, trust_env=False)

    def close(self) -> None:
        self.http.close()
        self.direct.close()

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(obj))

    def deploy(self, annotations: dict[str, str]) -> str:
        """Stock, balance and the storefront with these annotations, Ready; its latest revision's name."""
        from checkers.lab04_serverless import LAB_ID
        from labkit.kustomize import overlay

        self.core.patch_namespaced_config_map(
            "config-autoscaler", "knative-serving", {"data": {"scale-to-zero-grace-period": GRACE}}
        )
        admin = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bookstore-admin", "namespace": NAMESPACE}}
        self.apply({**admin, "stringData": {"token": "bench"}})
        for obj in overlay(LAB_ID):
            if obj["apiVersion"] != f"{GROUP}/{VERSION}":
                self.apply({**obj, "metadata": {**obj["metadata"], "namespace": NAMESPACE}})
        self.apply(storefront(annotations))
        self.cluster.kubectl("wait", "--for=condition=Ready", f"ksvc/{SERVICE}", "--timeout=300s", timeout=310)
        service: Any = self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "services", SERVICE)
        return str(service["status"]["latestReadyRevisionName"])

    def pods(self, revision: str, tests: dict[str, Callable[[Objects], bool]], limit: float) -> Timeline:
        return Timeline(
            self.core.list_namespaced_pod, tests, limit, label_selector=f"serving.knative.dev/revision={revision}"
        )

    def deployment(self, revision: str, tests: dict[str, Callable[[Objects], bool]], limit: float) -> Timeline:
        return Timeline(
            self.apps.list_namespaced_deployment, tests, limit, field_selector=f"metadata.name={revision}-deployment"
        )

    def await_zero(self, revision: str) -> None:
        """Until the revision has no pod left (the autoscaler scaled it to zero and the pod ended)."""
        gone = self.pods(revision, {"no pod left": lambda pods: not pods}, ZERO_TIMEOUT)
        try:
            gone.wait("no pod left", ZERO_TIMEOUT)
        finally:
            gone.stop()


def cold_starts(bench: Bench, trials: int) -> None:
    """Requests at zero, one per trial, with the moments each phase ended."""
    revision = bench.deploy(WINDOW)
    phases: dict[str, list[float]] = {
        "request -> Deployment scaled to 1 (activator's poke, autoscaler's decision)": [],
        "-> pod created (Deployment and ReplicaSet controllers: scheduling)": [],
        "-> pod Running with its address (kubelet: process group started)": [],
        "-> first direct answer (process start: interpreter, imports, app, port bound)": [],
        "-> cold request answered (activator hand-off: its probe, forwarding the held request)": [],
    }
    totals: list[float] = []
    kubelet_ready: list[float] = []
    for trial in range(1, trials + 1):
        bench.await_zero(revision)
        scaled = bench.deployment(
            revision, {"Deployment scaled to 1": lambda found: replicas(found) >= 1}, COLD_TIMEOUT
        )
        pods = bench.pods(
            revision,
            {
                "pod created": bool,
                "pod Running": lambda found: any(running(p) for p in found.values()),
                "pod Ready": lambda found: any(ready(p) for p in found.values()),
            },
            COLD_TIMEOUT,
        )
        answered: dict[str, float] = {}
        probe = threading.Thread(target=_probe_first_answer, args=(pods, answered), daemon=True)
        probe.start()
        started = time.monotonic()
        try:
            answer = bench.http.get(f"{URL}/health", timeout=COLD_TIMEOUT)
            done = time.monotonic()
            if answer.status_code != 200:
                raise SystemExit(f"cold request answered {answer.status_code}: {answer.text[:200]}")
            moments = [
                scaled.wait("Deployment scaled to 1", 5),
                pods.wait("pod created", 5),
                pods.wait("pod Running", 5),
            ]
            probe.join(5)
            moments += [answered.get("direct", done), done]
            kubelet_ready.append(pods.wait("pod Ready", COLD_TIMEOUT) - done)
        finally:
            scaled.stop()
            pods.stop()
        previous = started
        for phase, moment in zip(phases.values(), moments, strict=True):
            phase.append(moment - previous)
            previous = moment
        totals.append(done - started)
        print(f"trial {trial}/{trials}: cold start {totals[-1] * 1000:.0f} ms", flush=True)
    report(f"cold start p50 ({trials} trials)", percentile(totals, 0.5) * 1000, "ms")
    report(f"cold start p99 ({trials} trials)", percentile(totals, 0.99) * 1000, "ms")
    for name, seconds in phases.items():
        report(f"cold start: {name} p50", percentile(seconds, 0.5) * 1000, "ms")
    report(
        "cold start: the kubelet's Ready condition came after the answer by p50",
        percentile(kubelet_ready, 0.5) * 1000,
        "ms",
    )


def _probe_first_answer(pods: Timeline, answered: dict[str, float]) -> None:
    """GET /health straight to the new pod as soon as it has an address, until it first answers 200."""
    pods.wait("pod Running", COLD_TIMEOUT)
    (ip,) = {p.status.pod_ip for p in pods.objects.values() if running(p)}
    deadline = time.monotonic() + COLD_TIMEOUT
    with httpx.Client(timeout=1, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"http://{ip}:{PORT}/health").status_code == 200:
                    answered["direct"] = time.monotonic()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(PROBE_INTERVAL)


def process_start(samples: int) -> None:
    """The storefront started alone, as its pod does: until GET /health answers, and its imports alone."""
    env = {**os.environ, "BIND": "127.0.0.1", "BOOKSTORE_LOG_LEVEL": "warning"}
    starts: list[float] = []
    imports: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as data, httpx.Client(timeout=1, trust_env=False) as client:
        env["BOOKSTORE_DATA_DIR"] = data
        for _ in range(samples):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            started = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "bookstore.services.storefront"],
                env={**env, "PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    try:
                        if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        if process.poll() is not None or time.monotonic() - started > COLD_TIMEOUT:
                            raise SystemExit("the storefront did not start: run it by hand to see why") from None
                        time.sleep(PROBE_INTERVAL)
                starts.append(time.monotonic() - started)
            finally:
                process.terminate()
                process.wait()
            for command, into in (("import bookstore.services.storefront", imports), ("pass", bare)):
                begun = time.monotonic()
                subprocess.run([sys.executable, "-c", command], check=True)
                into.append(time.monotonic() - begun)
    report(f"storefront process alone: start -> /health p50 ({samples} runs)", percentile(starts, 0.5) * 1000, "ms")
    report(
        "storefront process alone: python -c 'import bookstore.services.storefront' p50",
        percentile(imports, 0.5) * 1000,
        "ms",
    )
    report("storefront process alone: python -c pass p50 (the interpreter)", percentile(bare, 0.5) * 1000, "ms")


def paths(bench: Bench, requests: int) -> None:
    """Warm GET /health in turn on three paths to one pod: direct, the proxy as a Service, the Knative route."""
    revision = bench.deploy({**WINDOW, "autoscaling.knative.dev/min-scale": "1"})
    warm = bench.pods(revision, {"a Ready pod": lambda found: any(ready(p) for p in found.values())}, SCALE_TIMEOUT)
    try:
        warm.wait("a Ready pod", SCALE_TIMEOUT)
    finally:
        warm.stop()
    ip = next(p.status.pod_ip for p in warm.objects.values() if ready(p))
    urls = {
        "direct": (bench.direct, f"http://{ip}:{PORT}/health"),
        "plain Service": (bench.http, f"http://{revision}-private.{NAMESPACE}/health"),
        "Knative route": (bench.http, f"{URL}/health"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(20):  # open and warm the keep-alive connections
        for client, url in urls.values():
            client.get(url).raise_for_status()
    for _ in range(requests):
        for name, (client, url) in urls.items():
            begun = time.perf_counter()
            client.get(url).raise_for_status()
            seconds[name].append(time.perf_counter() - begun)
    for name, measured in seconds.items():
        report(f"warm GET /health {name} p50 ({requests} requests)", percentile(measured, 0.5) * 1000, "ms")
        report(f"warm GET /health {name} p99", percentile(measured, 0.99) * 1000, "ms")
    direct = percentile(seconds["direct"], 0.5)
    service = percentile(seconds["plain Service"], 0.5)
    knative = percentile(seconds["Knative route"], 0.5)
    report("warm path: added by the proxy as a plain Service p50", (service - direct) * 1000, "ms")
    report("warm path: added by the Knative route p50", (knative - direct) * 1000, "ms")
    report("warm path: the activator's own part (Knative route - plain Service) p50", (knative - service) * 1000, "ms")
    report("warm path: Knative route / direct p50", knative / direct, "x")


@contextmanager
def load(bench: Bench, url: str, clients: int) -> Iterator[list[int]]:
    """`clients` threads calling `url` back to back while the block runs; yields [answered, failed] counts."""
    stop = threading.Event()
    counting = threading.Lock()
    answers = [0, 0]  # answered below 500, failed

    def client() -> None:
        while not stop.is_set():
            try:
                ok = bench.http.get(url, timeout=30).status_code < 500
            except httpx.HTTPError:
                ok = False
            with counting:
                answers[0 if ok else 1] += 1

    workers = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        yield answers
    finally:
        stop.set()
        for worker in workers:
            worker.join(35)


def scale_out(bench: Bench, clients: int) -> None:
    """A step from no load to `clients` clients on one warm pod: when the autoscaler reacts, when a pod is added."""
    revision = bench.deploy(
        {**WINDOW, "autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "4"}
    )
    one = bench.pods(revision, {"one Ready pod": lambda found: sum(map(ready, found.values())) == 1}, SCALE_TIMEOUT)
    try:
        one.wait("one Ready pod", SCALE_TIMEOUT)
    finally:
        one.stop()
    scaled = bench.deployment(revision, {"Deployment scaled up": lambda found: replicas(found) >= 2}, SCALE_TIMEOUT)
    pods = bench.pods(
        revision, {"a second Ready pod": lambda found: sum(map(ready, found.values())) >= 2}, SCALE_TIMEOUT
    )
    started = time.monotonic()
    try:
        with load(bench, f"{URL}/api/books", clients) as answers:
            asked = scaled.wait("Deployment scaled up", SCALE_TIMEOUT) - started
            second = pods.wait("a second Ready pod", SCALE_TIMEOUT) - started
            wanted = replicas(scaled.objects)
    finally:
        scaled.stop()
        pods.stop()
    print(f"scale-out: {answers[0]} answers, {answers[1]} failures during the step; {wanted} pods asked", flush=True)
    report(f"scale-out under a step of {clients} clients: autoscaler scales the Deployment up after", asked, "s")
    report(f"scale-out under a step of {clients} clients: a second pod Ready after", second, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args, _rest = parser.parse_known_args()
    process_start(min(args.trials, 10))
    with tempfile.TemporaryDirectory() as home, LocalClusterRunner(Path(home) / "lab-home") as cluster:
        bench = Bench(cluster)
        try:
            cold_starts(bench, args.trials)
            paths(bench, args.warm)
            scale_out(bench, args.clients)
        finally:
            bench.close()


if __name__ == "__main__":
    main()
