"""The service-to-service transport: httpx's requests and errors, aiohttp on the wire, the proxy from the env."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing

import httpx
import pytest

from bookstore.transport import ServiceHttp

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def listening(handler: Handler) -> AsyncIterator[int]:
    """A loopback server on an ephemeral port, answering each connection with ``handler``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head, await reader.readexactly(length)


def answer_with(status_line: bytes, body: bytes, seen: list[tuple[bytes, bytes]]) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with closing(writer):
            while not reader.at_eof():
                try:
                    seen.append(await read_request(reader))
                except asyncio.IncompleteReadError:
                    break
                writer.write(
                    status_line
                    + b"\r\ncontent-type: application/json\r\nx-served-by: test\r\n"
                    + b"content-length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()

    return handle


async def test_a_call_sends_the_request_and_returns_the_answer_read_whole() -> None:
    seen: list[tuple[bytes, bytes]] = []
    handler = answer_with(b"HTTP/1.1 201 Created", b'{"id": "1"}', seen)
    async with listening(handler) as port, ServiceHttp(timeout=5, base_url=f"http://127.0.0.1:{port}") as http:
        first = await http.request("POST", "/api/orders", json={"count": 2}, headers={"traceparent": "00-ab-cd-01"})
        second = await http.request("GET", "/api/orders/1")

    assert (first.status_code, first.reason_phrase, first.json()) == (201, "Created", {"id": "1"})
    assert first.headers["x-served-by"] == "test"
    (head, body), (second_head, _) = seen
    assert head.startswith(b"POST /api/orders HTTP/1.1\r\n")
    assert b"traceparent: 00-ab-cd-01" in head.lower()
    assert body == b'{"count":2}'
    assert second_head.startswith(b"GET /api/orders/1 HTTP/1.1\r\n")
    assert second.status_code == 201


async def test_calls_go_through_the_proxy_the_environment_names_unless_no_proxy_says_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    async with listening(answer_with(b"HTTP/1.1 200 OK", b"{}", seen)) as proxy_port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.setenv("NO_PROXY", "localhost,direct.example")
        async with ServiceHttp(timeout=5) as http:
            proxied = await http.request("GET", "http://stock/api/books")
            with pytest.raises(httpx.ConnectError):
                await http.request("GET", "http://direct.example:9/")  # not proxied: nothing resolves that name here

    assert proxied.status_code == 200
    ((head, _),) = seen
    assert head.startswith(b"GET http://stock/api/books HTTP/1.1\r\n")


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ServiceHttp(timeout=2) as http:
        with pytest.raises(httpx.ConnectError):
            await http.request("GET", f"http://127.0.0.1:{port}/")


async def test_a_server_that_does_not_answer_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with closing(writer):
            await reader.read()

    async with listening(silent) as port, ServiceHttp(timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.request("GET", f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize("reply", [b"", b"this is not HTTP\r\n\r\n"])
async def test_a_connection_closed_without_an_answer_is_a_transport_error_not_a_timeout(reply: bytes) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with closing(writer):
            await read_request(reader)
            writer.write(reply)

    async with listening(hang_up) as port, ServiceHttp(timeout=2) as http:
        with pytest.raises(httpx.TransportError) as raised:
            await http.request("GET", f"http://127.0.0.1:{port}/")
    assert not isinstance(raised.value, httpx.TimeoutException)
