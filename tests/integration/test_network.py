"""The service network of a real localcluster, driven as a notebook does: the kubernetes client and labkit.

Pods here are bound to a node of the test's own (`test-node`), which localcluster's kubelet leaves
alone as a kubelet leaves other nodes' pods: the test plays their kubelet, running each pod's server
on its own loopback address and writing the pod's status (IP, Ready) through the API.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from kubernetes import client

from labkit.connection import Connection
from tests.integration.conftest import LocalCluster, poll_until

pytestmark = pytest.mark.integration

NAMESPACE = "bookstore"
TEST_NODE = "test-node"


class PodServer(ThreadingHTTPServer):
    """A pod's HTTP server: answers with its name and the caller's address; /stream waits on a gate."""

    daemon_threads = True

    def __init__(self, name: str, ip: str) -> None:
        super().__init__((ip, 0), PodHandler)
        self.name = name
        self.release_stream = threading.Event()

    @property
    def ip(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class PodHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or small answers wait for a delayed ACK
    server: PodServer

    def do_GET(self) -> None:
        if self.path == "/stream":
            self._stream()
            return
        body = json.dumps({"server": self.server.name, "client": list(self.client_address)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._chunk(b"data: first\n\n")
        self.server.release_stream.wait(timeout=10)
        self._chunk(b"data: second\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests assert on answers, not on access logs."""


@pytest.fixture
def pods(conn: Connection) -> Iterator[Callable[..., PodServer]]:
    """Start pod servers and their pods; every server, pod and Service made here is removed afterwards."""
    servers: list[PodServer] = []
    made: list[str] = []

    def start(app: str, ip: str, *, ready: bool = True, port_name: str = "web") -> PodServer:
        server = PodServer(f"{app}-{len(servers)}", ip)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=server.name, labels={"app": app}),
            spec=client.V1PodSpec(
                node_name=TEST_NODE,
                containers=[
                    client.V1Container(
                        name="web",
                        image="ghcr.io/example/web:1",
                        ports=[client.V1ContainerPort(name=port_name, container_port=server.port)],
                    )
                ],
            ),
        )
        conn.core.create_namespaced_pod(NAMESPACE, pod)
        made.append(server.name)
        set_pod_ready(conn, server.name, ip, ready)
        return server

    try:
        yield start
    finally:
        for name in made:
            conn.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        for service in conn.core.list_namespaced_service(NAMESPACE, label_selector="test=network").items:
            conn.core.delete_namespaced_service(service.metadata.name, NAMESPACE)
        for server in servers:
            server.release_stream.set()
            server.shutdown()
            server.server_close()


def set_pod_ready(conn: Connection, name: str, ip: str, ready: bool) -> None:
    """What a kubelet reports for a running pod: its IP and whether it is Ready."""
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    conn.core.patch_namespaced_pod_status(name, NAMESPACE, {"status": status})


def create_service(conn: Connection, app: str, *, port: int = 80, target_port: int | str = "web") -> None:
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name=app, labels={"test": "network"}),
        spec=client.V1ServiceSpec(
            selector={"app": app},
            ports=[client.V1ServicePort(name="http", port=port, target_port=target_port)],
        ),
    )
    conn.core.create_namespaced_service(NAMESPACE, service)


def status_of(conn: Connection, url: str) -> int:
    return conn.http.get(url).status_code


def json_of(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_service_answers_by_short_name_and_fqdn(conn: Connection, pods: Callable[..., PodServer]) -> None:
    server = pods("stock", "127.0.5.1")
    create_service(conn, "stock")
    poll_until(lambda: status_of(conn, "http://stock/"), lambda s: s == 200, "stock to answer by its short name")
    for host in ("stock", "stock.bookstore", "stock.bookstore.svc", "stock.bookstore.svc.cluster.local"):
        assert json_of(conn.http.get(f"http://{host}/books"))["server"] == server.name


def test_endpoints_and_slices_show_the_ready_pod(conn: Connection, pods: Callable[..., PodServer]) -> None:
    server = pods("catalog", "127.0.5.2")
    create_service(conn, "catalog", port=8080)

    def addresses() -> list[tuple[str, int]]:
        endpoints = conn.core.read_namespaced_endpoints("catalog", NAMESPACE)
        return [(a.ip, p.port) for s in endpoints.subsets or [] for a in s.addresses or [] for p in s.ports]

    assert poll_until(addresses, bool, "the Endpoints of catalog") == [(server.ip, server.port)]
    slices = client.DiscoveryV1Api(conn.core.api_client).list_namespaced_endpoint_slice(
        NAMESPACE, label_selector="kubernetes.io/service-name=catalog"
    )
    (endpoint_slice,) = slices.items
    assert endpoint_slice.metadata.owner_references[0].kind == "Service"
    assert [(e.addresses, e.conditions.ready) for e in endpoint_slice.endpoints] == [([server.ip], True)]
    assert json_of(conn.http.get("http://catalog:8080/"))["server"] == server.name


def test_requests_are_balanced_over_every_endpoint(conn: Connection, pods: Callable[..., PodServer]) -> None:
    servers = [pods("balance", f"127.0.5.{10 + index}") for index in range(3)]
    create_service(conn, "balance")
    poll_until(
        lambda: {json_of(conn.http.get("http://balance/"))["server"] for _ in range(6)},
        lambda seen: len(seen) == 3,
        "all three endpoints of balance",
    )
    served = Counter(json_of(conn.http.get("http://balance/"))["server"] for _ in range(30))
    assert served == {server.name: 10 for server in servers}


def test_numeric_target_port(conn: Connection, pods: Callable[..., PodServer]) -> None:
    server = pods("numbered", "127.0.5.3", port_name="other")
    create_service(conn, "numbered", port=9000, target_port=server.port)
    answer = poll_until(lambda: conn.http.get("http://numbered:9000/"), lambda a: a.status_code == 200, "numbered")
    assert answer.json()["server"] == server.name


def test_unknown_service_is_503_with_reason(conn: Connection) -> None:
    answer = conn.http.get("http://no-such-service/api/books")
    assert answer.status_code == 503
    assert answer.json()["reason"] == "ServiceNotFound"
    assert '"no-such-service" in namespace "bookstore"' in answer.json()["message"]


def test_endpoints_follow_readiness(conn: Connection, pods: Callable[..., PodServer]) -> None:
    server = pods("flaky", "127.0.5.4")
    create_service(conn, "flaky")
    poll_until(lambda: status_of(conn, "http://flaky/"), lambda s: s == 200, "flaky to answer")

    set_pod_ready(conn, server.name, server.ip, False)
    answer = poll_until(lambda: conn.http.get("http://flaky/"), lambda a: a.status_code == 503, "flaky to be unready")
    assert answer.json()["reason"] == "NoReadyEndpoints"
    endpoints = conn.core.read_namespaced_endpoints("flaky", NAMESPACE)
    assert [a.ip for a in endpoints.subsets[0].not_ready_addresses] == [server.ip]

    set_pod_ready(conn, server.name, server.ip, True)
    poll_until(lambda: status_of(conn, "http://flaky/"), lambda s: s == 200, "flaky to be ready again")


def test_streaming_response_passes_through_incrementally(conn: Connection, pods: Callable[..., PodServer]) -> None:
    server = pods("events", "127.0.5.5")
    create_service(conn, "events")
    poll_until(lambda: status_of(conn, "http://events/"), lambda s: s == 200, "events to answer")
    with conn.http.stream("GET", "http://events/stream") as answer:
        chunks = answer.iter_raw()
        # The pod sends its second event only once the first has come through the proxy.
        assert next(chunks) == b"data: first\n\n"
        server.release_stream.set()
        assert b"".join(chunks) == b"data: second\n\n"


def test_proxy_keeps_backend_connections_alive(conn: Connection, pods: Callable[..., PodServer]) -> None:
    pods("pooled", "127.0.5.6")
    create_service(conn, "pooled")
    poll_until(lambda: status_of(conn, "http://pooled/"), lambda s: s == 200, "pooled to answer")
    callers = {tuple(json_of(conn.http.get("http://pooled/"))["client"]) for _ in range(5)}
    assert len(callers) == 1  # five requests, one proxy-to-pod connection


def test_lab_status_shows_the_proxy(cluster: LocalCluster, conn: Connection) -> None:
    output = cluster.lab("status").stdout
    proxy_line = next(line for line in output.splitlines() if line.startswith("proxy"))
    assert proxy_line.split()[1].startswith("http://127.0.0.1:")
