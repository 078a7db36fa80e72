"""What the proxy refuses: destinations outside the cluster, dawdling request heads, too many connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from localcluster.api.cluster import Cluster
from localcluster.controllers.endpoints import EndpointsController
from localcluster.network import ProxyLimits, ServiceProxy

from .backends import Backend, serving
from .conftest import NAMESPACE, create_pod, create_service
from .test_proxy import read_response

pytestmark = pytest.mark.anyio


@pytest.fixture
async def proxy(cluster: Cluster) -> AsyncIterator[ServiceProxy]:
    limits = ProxyLimits(header_timeout=0.3, idle_timeout=0.5, max_connections_per_client=3)
    async with ServiceProxy.for_store(cluster.store, limits=limits) as running:
        yield running


class Listener:
    """A server on loopback that is not a pod (another user's process): it counts who reaches it."""

    def __init__(self) -> None:
        self.connections = 0

    async def accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
        writer.close()


async def test_loopback_address_outside_the_cluster_is_refused(proxy: ServiceProxy) -> None:
    listener = Listener()
    server = await asyncio.start_server(listener.accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
            by_ip = await client.get(f"http://127.0.0.1:{port}/")
            by_localhost = await client.get(f"http://localhost:{port}/")
    finally:
        server.close()
    assert (by_ip.status_code, by_ip.json()["reason"]) == (403, "OutsideCluster")
    assert "not a pod of this cluster" in by_ip.json()["message"]
    assert (by_localhost.status_code, by_localhost.json()["reason"]) == (403, "OutsideCluster")
    assert listener.connections == 0


async def test_endpoints_naming_a_stranger_are_not_followed(cluster: Cluster, proxy: ServiceProxy) -> None:
    """A Service without selector whose Endpoints a user points at someone else's port."""
    listener = Listener()
    server = await asyncio.start_server(listener.accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        create_service(cluster, "sneaky", {"ports": [{"port": 80, "targetPort": port}]})
        endpoints = cluster.registry.get("", "endpoints")
        body = {
            "metadata": {"name": "sneaky"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": port}]}],
        }
        cluster.create(endpoints, "v1", NAMESPACE, body)
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
            answer = await client.get("http://sneaky/")
    finally:
        server.close()
    assert answer.status_code == 403
    assert "an endpoint of bookstore/sneaky" in answer.json()["message"]
    assert listener.connections == 0


async def test_half_sent_request_head_is_closed_after_the_header_timeout(proxy: ServiceProxy) -> None:
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        writer.write(b"GET http://stock/ HTTP/1.1\r\nHost: st")
        status, body = await read_response(reader)
        assert (status, body) == (408, b"request header timeout")
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # and the connection is closed
    finally:
        writer.close()


async def test_idle_connection_is_closed(proxy: ServiceProxy) -> None:
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    finally:
        writer.close()


async def test_connections_per_client_are_bounded(proxy: ServiceProxy) -> None:
    async with AsyncExitStack() as stack:
        held = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection(*proxy.address)
            stack.callback(writer.close)
            held.append((reader, writer))
        reader, writer = await asyncio.open_connection(*proxy.address)
        stack.callback(writer.close)
        status, body = await read_response(reader)
        assert status == 503 and b"TooManyConnections" in body
        # The connections held are still served.
        held[0][1].write(b"GET http://nowhere/ HTTP/1.1\r\nHost: nowhere\r\n\r\n")
        status, _ = await read_response(held[0][0])
        assert status == 503


async def test_pod_created_just_now_is_reachable(cluster: Cluster, proxy: ServiceProxy) -> None:
    """The proxy's pod map follows a watch; a pod whose event is still queued is looked up, not refused."""
    async with AsyncExitStack() as stack:
        backend = await stack.enter_async_context(serving(Backend("new", "127.0.2.7")))
        create_pod(cluster, "new", labels={"app": "new"}, ip=backend.host)
        create_service(
            cluster, "new", {"selector": {"app": "new"}, "ports": [{"port": 80, "targetPort": backend.port}]}
        )
        EndpointsController(cluster).sync(NAMESPACE, "new")
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
            assert (await client.get("http://new/whoami")).json()["server"] == "new"
