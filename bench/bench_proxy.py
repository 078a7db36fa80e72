"""How much the service proxy adds to a call, and how many calls per second it relays.

The backend (a minimal ASGI app under uvicorn, as a pod's server) and the proxy (localcluster's
ServiceProxy over a real store holding a Service and its Endpoints) each run in a process of their
own, as they do under localcluster; this process is the client. Direct and proxied calls alternate,
on keep-alive connections, so both see the same machine load; the callers are bare sockets so that
a client library's own cost does not drown what is measured. Everything binds loopback only.

    python bench/bench_proxy.py [--requests 2000] [--concurrency 16]

prints plain `name: value unit` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SERVICE = "bench"
NAMESPACE = "bookstore"
#: The backend's address: a pod's own loopback address, as under localcluster (the proxy forwards
#: only to pods, so the store holds a pod with this IP).
BACKEND_HOST = "127.0.9.1"
BODY = b'{"id":"00001","title":"Cloud Native Go","price":69}'


async def backend_app(scope: dict[str, object], receive: Callable[[], Awaitable[object]], send: Callable) -> None:
    """The cheapest HTTP answer an ASGI server can give: a small JSON body, like a book lookup."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def serve_backend() -> None:
    import uvicorn

    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # Nagle's algorithm holds the body behind the head until a delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((BACKEND_HOST, 0))
    sock.listen(512)  # before the port is announced, so the first connection cannot be refused
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(backend_app, log_level="warning", access_log=False, lifespan="off")).run(
        sockets=[sock]
    )


def serve_proxy(backend_port: int, state_dir: Path) -> None:
    """A store with the Service and its Endpoints, and the proxy localcluster runs over it."""
    from localcluster.api.cluster import Cluster
    from localcluster.api.resources import ResourceRegistry
    from localcluster.api.schemas import SchemaIndex
    from localcluster.network import ServiceProxy
    from localcluster.server import bootstrap
    from localcluster.settings import Settings
    from localcluster.store import Store

    registry = ResourceRegistry.load(Settings().schemas_dir)
    cluster = Cluster(Store(state_dir / "store.sqlite"), registry, SchemaIndex(registry))
    bootstrap(cluster)
    service = {"metadata": {"name": SERVICE}, "spec": {"ports": [{"port": 80, "targetPort": backend_port}]}}
    endpoints = {
        "metadata": {"name": SERVICE},
        "subsets": [{"addresses": [{"ip": BACKEND_HOST}], "ports": [{"port": backend_port}]}],
    }
    pod = {"metadata": {"name": SERVICE}, "spec": {"containers": [{"name": "web", "image": "bench"}]}}
    pods = registry.get("", "pods")
    created = cluster.create(pods, "v1", NAMESPACE, pod).obj
    created["status"] = {"phase": "Running", "podIP": BACKEND_HOST, "podIPs": [{"ip": BACKEND_HOST}]}
    cluster.replace(pods, "v1", NAMESPACE, SERVICE, created, subresource="status")
    cluster.create(registry.get("", "services"), "v1", NAMESPACE, service)
    cluster.create(registry.get("", "endpoints"), "v1", NAMESPACE, endpoints)

    async def run() -> None:
        async with ServiceProxy.for_store(cluster.store) as proxy:
            print(proxy.address[1], flush=True)
            await asyncio.Event().wait()

    asyncio.run(run())


@contextmanager
def child(*args: str, command: Sequence[str] = (__file__,)) -> Iterator[int]:
    """Run `command` (this script by default) in `--serve-*` mode; yields the port it printed, then stops it."""
    process = subprocess.Popen(
        [sys.executable, *command, *args], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            raise SystemExit(f"{' '.join(args)} did not start (exit code {process.poll()})")
        yield int(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class KeepAliveCaller:
    """A bare HTTP/1.1 keep-alive client on one socket: so the numbers measure servers, not a client library."""

    def __init__(self, address: tuple[str, int], target: str, host: str, *, source: str | None = None) -> None:
        # `source`: call from that address, as a pod calls from its own (the proxy knows callers by it).
        self._socket = socket.create_connection(address, source_address=(source, 0) if source else None)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self._buffer = b""

    def call(self) -> None:
        self._socket.sendall(self._request)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._receive()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"unexpected answer: {head.decode(errors='replace')}")
        while len(self._buffer) < len(BODY):
            self._buffer += self._receive()
        self._buffer = self._buffer[len(BODY) :]

    def _receive(self) -> bytes:
        data = self._socket.recv(65536)
        if not data:
            raise SystemExit("the server closed the connection")
        return data

    def close(self) -> None:
        self._socket.close()


def latencies(backend_port: int, proxy_port: int, count: int) -> tuple[list[float], list[float]]:
    """Seconds per call, direct and through the proxy, measured alternately on warm connections."""
    direct = KeepAliveCaller((BACKEND_HOST, backend_port), "/", BACKEND_HOST)
    proxied = KeepAliveCaller(("127.0.0.1", proxy_port), f"http://{SERVICE}/", SERVICE)
    timings: tuple[list[float], list[float]] = ([], [])
    try:
        for _ in range(100):  # warm up: connections, pools, code paths
            direct.call()
            proxied.call()
        for _ in range(count):
            for caller, samples in zip((direct, proxied), timings, strict=True):
                started = time.perf_counter()
                caller.call()
                samples.append(time.perf_counter() - started)
    finally:
        direct.close()
        proxied.close()
    return timings


async def throughput(proxy_port: int, count: int, concurrency: int) -> float:
    """Requests per second through the proxy with `concurrency` keep-alive callers sharing `count` requests."""
    remaining = iter(range(count))
    request = f"GET http://{SERVICE}/ HTTP/1.1\r\nHost: {SERVICE}\r\n\r\n".encode()

    async def caller() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        try:
            for _ in remaining:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200 "):
                    raise SystemExit(f"unexpected answer: {head.decode(errors='replace')}")
                await reader.readexactly(len(BODY))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent callers for the throughput run")
    parser.add_argument("--serve-backend", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", type=int, metavar="BACKEND_PORT", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_backend:
        serve_backend()
        return
    if options.serve_proxy:
        serve_proxy(options.serve_proxy, options.state_dir)
        return
    with (
        tempfile.TemporaryDirectory(prefix="bench-proxy-") as state_dir,
        child("--serve-backend") as backend_port,
        child("--serve-proxy", str(backend_port), "--state-dir", state_dir) as proxy_port,
    ):
        direct, proxied = latencies(backend_port, proxy_port, options.requests)
        rate = asyncio.run(throughput(proxy_port, options.requests, options.concurrency))
    milliseconds = {
        "direct latency p50": statistics.median(direct),
        "direct latency p99": percentile(direct, 0.99),
        "proxied latency p50": statistics.median(proxied),
        "proxied latency p99": percentile(proxied, 0.99),
        "proxy added latency p50": statistics.median(proxied) - statistics.median(direct),
        "proxy added latency p99": percentile(proxied, 0.99) - percentile(direct, 0.99),
    }
    for name, seconds in milliseconds.items():
        print(f"{name}: {seconds * 1000:.3f} ms")
    print(f"proxy throughput: {rate:.0f} requests/s")
    print(f"requests: {options.requests} count")


if __name__ == "__main__":
    main()
