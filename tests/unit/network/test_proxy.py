"""The service proxy in-process: real Services, Endpoints and pods in a store, real HTTP servers as pods."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from localcluster.api.cluster import Cluster
from localcluster.controllers.endpoints import EndpointsController
from localcluster.network import NAMESPACE_HEADER, ServiceProxy

from .backends import Backend, serving
from .conftest import NAMESPACE, create_pod, create_service

pytestmark = pytest.mark.anyio


@pytest.fixture
async def proxy(cluster: Cluster) -> AsyncIterator[ServiceProxy]:
    async with ServiceProxy.for_store(cluster.store) as running:
        yield running


@pytest.fixture
async def client(proxy: ServiceProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(proxy=proxy.url, trust_env=False, timeout=10) as running:
        yield running


def expose(
    cluster: Cluster,
    name: str,
    backends: Iterable[Backend],
    *,
    namespace: str = NAMESPACE,
    port: int = 80,
    ready: bool = True,
    target_port: int | str | None = None,
) -> None:
    """A Service selecting one Ready pod per backend (the pod's IP and port are the backend's)."""
    labels = {"app": name}
    service_port: dict[str, Any] = {"name": "http", "port": port}
    service_port["targetPort"] = target_port if target_port is not None else "web"
    create_service(cluster, name, {"selector": labels, "ports": [service_port]}, namespace=namespace)
    for index, backend in enumerate(backends):
        create_pod(
            cluster,
            f"{name}-{index}",
            labels=labels,
            ip=backend.host,
            ready=ready,
            ports=[{"name": "web", "containerPort": backend.port}],
            namespace=namespace,
        )
    EndpointsController(cluster).sync(namespace, name)


async def run_backends(stack: AsyncExitStack, *names_and_hosts: tuple[str, str]) -> list[Backend]:
    return [await stack.enter_async_context(serving(Backend(name, host))) for name, host in names_and_hosts]


async def test_service_answers_by_every_dns_form(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("stock-a", "127.0.2.1"))
        expose(cluster, "stock", backends)
        for host in ("stock", "stock.bookstore", "stock.bookstore.svc", "stock.bookstore.svc.cluster.local"):
            answer = await client.get(f"http://{host}/whoami?x=1")
            assert answer.status_code == 200, (host, answer.text)
            assert answer.json()["server"] == "stock-a"
            assert answer.json()["query"] == "x=1"
            assert dict(answer.json()["headers"])["host"] == host


async def test_requests_are_balanced_round_robin_over_ready_endpoints(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("a", "127.0.2.1"), ("b", "127.0.2.2"), ("c", "127.0.2.3"))
        expose(cluster, "stock", backends)
        served = Counter([(await client.get("http://stock/whoami")).json()["server"] for _ in range(9)])
        assert served == {"a": 3, "b": 3, "c": 3}


async def test_only_ready_endpoints_receive_traffic(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        ready, unready = await run_backends(stack, ("ready", "127.0.2.1"), ("unready", "127.0.2.2"))
        expose(cluster, "stock", [ready])
        create_pod(
            cluster,
            "stock-unready",
            labels={"app": "stock"},
            ip=unready.host,
            ready=False,
            ports=[{"name": "web", "containerPort": unready.port}],
        )
        EndpointsController(cluster).sync(NAMESPACE, "stock")
        served = {(await client.get("http://stock/whoami")).json()["server"] for _ in range(4)}
        assert served == {"ready"}


async def test_numeric_target_port(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        (backend,) = await run_backends(stack, ("numbered", "127.0.2.1"))
        expose(cluster, "stock", [backend], port=8000, target_port=backend.port)
        answer = await client.get("http://stock:8000/whoami")
        assert answer.json()["server"] == "numbered"


async def test_unknown_service_is_503_with_reason(client: httpx.AsyncClient) -> None:
    answer = await client.get("http://nowhere/books")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["reason"] == "ServiceNotFound"
    assert 'no Service "nowhere" in namespace "bookstore"' in answer.json()["message"]


async def test_error_is_plain_text_for_clients_that_ask_for_text(client: httpx.AsyncClient) -> None:
    answer = await client.get("http://nowhere.shop/", headers={"accept": "text/plain"})
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text.startswith('no Service "nowhere" in namespace "shop"')


async def test_service_without_ready_endpoint_is_503(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("starting", "127.0.2.1"))
        expose(cluster, "stock", backends, ready=False)
        answer = await client.get("http://stock/whoami")
        assert answer.status_code == 503
        assert answer.json()["reason"] == "NoReadyEndpoints"
        assert "kubectl get endpoints stock -n bookstore" in answer.json()["message"]


async def test_port_the_service_does_not_expose_is_503(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("web", "127.0.2.1"))
        expose(cluster, "stock", backends, port=8080)
        answer = await client.get("http://stock/whoami")
        assert answer.status_code == 503
        assert answer.json()["reason"] == "PortNotExposed"
        assert "its ports: 8080" in answer.json()["message"]


async def test_refusing_backend_is_502(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        (backend,) = await run_backends(stack, ("gone", "127.0.2.1"))
    expose(cluster, "stock", [backend])  # the pod is Ready but nothing listens on its port any more
    answer = await client.get("http://stock/whoami")
    assert answer.status_code == 502
    assert answer.json()["reason"] == "BackendRefused"


async def test_namespace_header_picks_where_short_names_resolve(cluster: Cluster, client: httpx.AsyncClient) -> None:
    namespaces = cluster.registry.get("", "namespaces")
    cluster.create(namespaces, "v1", "", {"metadata": {"name": "shop"}})
    async with AsyncExitStack() as stack:
        here, there = await run_backends(stack, ("bookstore-stock", "127.0.2.1"), ("shop-stock", "127.0.2.2"))
        expose(cluster, "stock", [here])
        expose(cluster, "stock", [there], namespace="shop")
        default = await client.get("http://stock/whoami")
        shop = await client.get("http://stock/whoami", headers={NAMESPACE_HEADER: "shop"})
        assert (default.json()["server"], shop.json()["server"]) == ("bookstore-stock", "shop-stock")
        assert NAMESPACE_HEADER not in dict(shop.json()["headers"])
        bad = await client.get("http://stock/whoami", headers={NAMESPACE_HEADER: "Not A Namespace"})
        assert bad.status_code == 400


async def test_calling_pod_resolves_short_names_in_its_own_namespace(cluster: Cluster, proxy: ServiceProxy) -> None:
    namespaces = cluster.registry.get("", "namespaces")
    cluster.create(namespaces, "v1", "", {"metadata": {"name": "shop"}})
    create_pod(cluster, "caller", labels={"app": "caller"}, ip="127.0.3.9", namespace="shop")
    async with AsyncExitStack() as stack:
        here, there = await run_backends(stack, ("bookstore-stock", "127.0.2.1"), ("shop-stock", "127.0.2.2"))
        expose(cluster, "stock", [here])
        expose(cluster, "stock", [there], namespace="shop")
        # Connect from the pod's address, as a pod's runtime does (httpx cannot bind its proxy connections).
        reader, writer = await asyncio.open_connection(*proxy.address, local_addr=("127.0.3.9", 0))
        try:
            # The pod's namespace wins over a header it sends: a pod cannot pick another's DNS search path.
            writer.write(
                f"GET http://stock/whoami HTTP/1.1\r\nHost: stock\r\n{NAMESPACE_HEADER}: bookstore\r\n\r\n".encode()
            )
            status, body = await read_response(reader)
        finally:
            writer.close()
        assert (status, json.loads(body)["server"]) == (200, "shop-stock")


async def test_proxy_url_user_names_the_namespace(cluster: Cluster, proxy: ServiceProxy) -> None:
    namespaces = cluster.registry.get("", "namespaces")
    cluster.create(namespaces, "v1", "", {"metadata": {"name": "shop"}})
    async with AsyncExitStack() as stack:
        (there,) = await run_backends(stack, ("shop-stock", "127.0.2.2"))
        expose(cluster, "stock", [there], namespace="shop")
        per_pod_url = proxy.url.replace("http://", "http://shop@")
        async with httpx.AsyncClient(proxy=per_pod_url, trust_env=False) as client:
            answer = await client.get("http://stock/whoami")
        assert answer.json()["server"] == "shop-stock"
        assert "proxy-authorization" not in dict(answer.json()["headers"])


async def test_request_bodies_are_forwarded_fixed_and_chunked(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("echo", "127.0.2.1"))
        expose(cluster, "stock", backends)
        payload = bytes(range(256)) * 4096  # 1 MiB, more than one read on either side
        fixed = await client.post("http://stock/echo", content=payload)
        assert fixed.status_code == 200 and fixed.content == payload

        async def pieces() -> AsyncIterator[bytes]:
            for index in range(5):
                yield f"piece {index};".encode()

        chunked = await client.put("http://stock/echo", content=pieces())
        assert chunked.text == "".join(f"piece {index};" for index in range(5))


async def test_streaming_response_arrives_incrementally(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        (backend,) = await run_backends(stack, ("sse", "127.0.2.1"))
        expose(cluster, "events", [backend])
        async with client.stream("GET", "http://events/stream") as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            chunks = answer.aiter_raw()
            # The backend holds its second event until we have read the first through the proxy.
            first = await asyncio.wait_for(anext(chunks), timeout=5)
            assert first == b"data: first\n\n"
            backend.release_stream.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert rest == b"data: second\n\n"


async def test_backend_connections_are_kept_alive_and_reused(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("pooled", "127.0.2.1"))
        expose(cluster, "stock", backends)
        ports = {tuple((await client.get("http://stock/whoami")).json()["client"]) for _ in range(5)}
        assert len(ports) == 1  # every request came over the same proxy-to-backend connection


async def test_client_connection_is_kept_alive(cluster: Cluster, proxy: ServiceProxy) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("kept", "127.0.2.1"))
        expose(cluster, "stock", backends)
        reader, writer = await asyncio.open_connection(*proxy.address)
        try:
            for _ in range(3):
                writer.write(b"GET http://stock/whoami HTTP/1.1\r\nHost: stock\r\n\r\n")
                status, body = await read_response(reader)
                assert status == 200 and json.loads(body)["server"] == "kept"
        finally:
            writer.close()


async def test_hop_by_hop_headers_are_not_forwarded(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("headers", "127.0.2.1"))
        expose(cluster, "stock", backends)
        answer = await client.get(
            "http://stock/whoami",
            headers={
                "connection": "keep-alive, x-private",
                "x-private": "secret",
                "keep-alive": "timeout=5",
                "te": "trailers",
                "x-end-to-end": "kept",
                "x-forwarded-for": "10.1.2.3",
            },
        )
        seen = dict(answer.json()["headers"])
        for name in ("x-private", "keep-alive", "te", "proxy-connection"):
            assert name not in seen
        assert seen["x-end-to-end"] == "kept"
        assert seen["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
        assert answer.headers["x-served-by"] == "headers"


async def test_head_and_no_content_answers_pass_through(cluster: Cluster, client: httpx.AsyncClient) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("bodiless", "127.0.2.1"))
        expose(cluster, "stock", backends)
        head = await client.head("http://stock/whoami")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        empty = await client.get("http://stock/empty")
        assert empty.status_code == 204 and empty.content == b""
        after = await client.get("http://stock/whoami")
        assert after.json()["server"] == "bodiless"


async def test_expect_continue_is_answered_by_the_proxy(cluster: Cluster, proxy: ServiceProxy) -> None:
    async with AsyncExitStack() as stack:
        backends = await run_backends(stack, ("echo", "127.0.2.1"))
        expose(cluster, "stock", backends)
        reader, writer = await asyncio.open_connection(*proxy.address)
        try:
            writer.write(
                b"POST http://stock/echo HTTP/1.1\r\nHost: stock\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            assert interim.startswith(b"HTTP/1.1 100 ")
            writer.write(b"hello")
            status, body = await read_response(reader)
            assert (status, body) == (200, b"hello")
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /whoami HTTP/1.1\r\n\r\n", 400),  # no Host: nothing to route by
        (b"GET ftp://stock/ HTTP/1.1\r\nHost: stock\r\n\r\n", 400),
        (b"GET http://stock:notaport/ HTTP/1.1\r\nHost: stock\r\n\r\n", 400),
        (b"CONNECT stock:443 HTTP/1.1\r\nHost: stock:443\r\n\r\n", 405),
        (b"GET http://8.8.8.8/ HTTP/1.1\r\nHost: 8.8.8.8\r\n\r\n", 403),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"x-long: " + b"a" * 200_000 + b"\r\n\r\n", 431),
    ],
)
async def test_bad_requests_get_an_answer_not_a_crash(proxy: ServiceProxy, request_bytes: bytes, status: int) -> None:
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        writer.write(request_bytes)
        answer, _ = await read_response(reader)
        assert answer == status
    finally:
        writer.close()
    async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
        assert (await client.get("http://nowhere/")).status_code == 503  # still serving


async def test_requests_for_the_proxy_itself_do_not_loop(proxy: ServiceProxy) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.get(f"{proxy.url}/")
    assert answer.status_code == 400
    assert answer.json()["reason"] == "ProxyAddressed"


async def test_pod_ips_are_reached_directly(cluster: Cluster, proxy: ServiceProxy) -> None:
    async with AsyncExitStack() as stack:
        (pod,) = await run_backends(stack, ("by-ip", "127.0.2.1"))
        create_pod(cluster, "by-ip", labels={"app": "by-ip"}, ip=pod.host)
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
            by_ip = await client.get(f"http://127.0.2.1:{pod.port}/whoami")
        assert by_ip.json()["server"] == "by-ip"


async def test_localhost_means_the_calling_pod(cluster: Cluster, proxy: ServiceProxy) -> None:
    async with AsyncExitStack() as stack:
        (pod,) = await run_backends(stack, ("itself", "127.0.2.1"))
        create_pod(cluster, "itself", labels={"app": "itself"}, ip=pod.host)
        reader, writer = await asyncio.open_connection(*proxy.address, local_addr=(pod.host, 0))
        try:
            writer.write(f"GET http://localhost:{pod.port}/whoami HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            status, body = await read_response(reader)
        finally:
            writer.close()
        assert (status, json.loads(body)["server"]) == (200, "itself")


async def test_invalid_proxy_credentials_are_400(proxy: ServiceProxy) -> None:
    garbage = "Basic " + base64.b64encode(b"\xff\xfe").decode()
    async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
        answer = await client.get("http://stock/", headers={"proxy-authorization": garbage})
    assert answer.status_code == 400


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one Content-Length framed response (what the proxy sends for these tests)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return status, await reader.readexactly(length)


async def answer_once_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request, then close as the next arrives: an idle timeout racing the connection's reuse."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.CancelledError):
        pass  # the proxy closed its idle connection, or the test ended: either way this connection is done
    finally:
        writer.close()


async def test_reused_connection_closed_by_the_backend_is_retried_for_safe_requests(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    server = await asyncio.start_server(answer_once_per_connection, "127.0.2.1", 0)
    try:
        expose(cluster, "stock", [Backend("racy", "127.0.2.1", server.sockets[0].getsockname()[1])])
        answers = [await client.get("http://stock/") for _ in range(3)]
        assert [(a.status_code, a.text) for a in answers] == [(200, "ok")] * 3
        # A POST on the reused connection is not sent again: it may have been done before the close.
        unsafe = await client.post("http://stock/", content=b"buy")
        assert (unsafe.status_code, unsafe.json()["reason"]) == (502, "BackendClosed")
        assert (await client.post("http://stock/", content=b"buy")).status_code == 200  # new connection
    finally:
        server.close()
