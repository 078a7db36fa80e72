"""HTTP/1.1 plumbing of the service proxy: h11 events on asyncio streams, bodies relayed as they come.

The client side is an h11 server connection, the backend side an h11 client connection (see
`pool.Backend`). Everything here moves messages between them; deciding where they go and what
happens around them is the proxy's business (proxy.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11

from localcluster.network.pool import READ_SIZE, Backend
from localcluster.network.routing import NAMESPACE_HEADER, HeaderOperations, ProxyError

log = logging.getLogger("localcluster.proxy")

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the ones the proxy
#: acts on itself: `expect` (it answers 100-continue) and its own namespace header.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        NAMESPACE_HEADER.encode(),
    }
)
_IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
#: How long a connection we are closing on a client still sending is drained before it is closed.
_LINGER_SECONDS = 2.0


class ClientGone(Exception):
    """The client closed its connection before its request was complete (or must lose it: a cut answer)."""


class BackendFailed(Exception):
    """The backend's side of an exchange broke (it closed, reset or sent something that is not HTTP)."""


@dataclass
class Body:
    """A request body read ahead of forwarding, so it can be sent more than once (retries, mirrors).

    `complete` is False when the body was larger than the buffer: what was read is sent first and the
    rest streams from the client, so that request can be sent only once (as Envoy does past its
    buffer limit).
    """

    chunks: list[bytes] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = False

    @property
    def size(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


async def next_event(connection: h11.Connection, reader: asyncio.StreamReader) -> Any:
    """The connection's next event, reading from the socket as long as h11 needs more bytes."""
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(await reader.read(READ_SIZE))


def _backend_event(backend: Backend) -> Any:
    """The backend's next event from what was read so far (NEED_DATA if none)."""
    try:
        event = backend.http.next_event()
    except h11.RemoteProtocolError as exc:
        raise BackendFailed(f"not a valid HTTP answer: {exc}") from exc
    if isinstance(event, h11.ConnectionClosed):
        raise BackendFailed("it closed the connection")
    return event


async def _backend_receive(backend: Backend) -> None:
    try:
        backend.http.receive_data(await backend.reader.read(READ_SIZE))
    except (OSError, h11.RemoteProtocolError) as exc:
        raise BackendFailed(str(exc) or type(exc).__name__) from exc


async def backend_write(backend: Backend, data: bytes) -> None:
    try:
        backend.writer.write(data)
        await backend.writer.drain()
    except OSError as exc:
        raise BackendFailed(str(exc) or type(exc).__name__) from exc


async def read_body(
    client: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int
) -> Body:
    """Read the client's body into memory, up to `limit` bytes (answering 100-continue as needed)."""
    body = Body()
    while body.size <= limit:
        event = client.next_event()
        if event is h11.NEED_DATA:
            if client.they_are_waiting_for_100_continue:
                writer.write(client.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            client.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Data):
            body.chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            body.trailers = list(event.headers)
            body.complete = True
            return body
        else:
            raise ClientGone
    return body


async def send_request(
    client: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    backend: Backend,
    outgoing: h11.Request,
    body: Body | None,
) -> int:
    """Write the request head, then the body: `body` as read ahead, and whatever the client still sends.

    Returns the body's size. What is already read goes out in one write; the rest streams through.
    """
    pending = [backend.http.send(outgoing) or b""]
    size = 0
    if body is not None:
        for chunk in body.chunks:
            pending.append(backend.http.send(h11.Data(data=chunk)) or b"")
        size = body.size
        if body.complete:
            pending.append(backend.http.send(h11.EndOfMessage(headers=body.trailers)) or b"")
            await backend_write(backend, b"".join(pending))
            return size
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            await backend_write(backend, b"".join(pending))
            pending.clear()
            if client.they_are_waiting_for_100_continue:
                writer.write(client.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            client.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Data):
            size += len(event.data)
            pending.append(backend.http.send(h11.Data(data=event.data)) or b"")
        elif isinstance(event, h11.EndOfMessage):
            pending.append(backend.http.send(h11.EndOfMessage(headers=event.headers)) or b"")
            await backend_write(backend, b"".join(pending))
            return size
        else:
            raise ClientGone


async def next_response(backend: Backend) -> h11.Response:
    """The backend's final response head (100 Continue and other interim answers are skipped)."""
    while True:
        event = _backend_event(backend)
        if event is h11.NEED_DATA:
            await _backend_receive(backend)
        elif isinstance(event, h11.Response):
            return event


async def send_response(
    client: h11.Connection, writer: asyncio.StreamWriter, backend: Backend, head: h11.Response
) -> int:
    """Relay the head and body: everything read so far goes out before waiting for more (streaming).

    Returns the body's size.
    """
    pending = [client.send(head) or b""]
    size = 0
    while True:
        event = _backend_event(backend)
        if event is h11.NEED_DATA:
            writer.write(b"".join(pending))
            pending.clear()
            await writer.drain()
            await _backend_receive(backend)
        elif isinstance(event, h11.Data):
            size += len(event.data)
            pending.append(client.send(h11.Data(data=event.data)) or b"")
        elif isinstance(event, h11.EndOfMessage):
            pending.append(client.send(h11.EndOfMessage(headers=event.headers)) or b"")
            writer.write(b"".join(pending))
            return size


async def drain_response(backend: Backend) -> None:
    """Read a backend's answer to its end and drop it (a mirrored request's answer)."""
    while True:
        event = _backend_event(backend)
        if event is h11.NEED_DATA:
            await _backend_receive(backend)
        elif isinstance(event, h11.EndOfMessage):
            return


async def discard_body(client: h11.Connection, reader: asyncio.StreamReader) -> None:
    """Read and drop the rest of a request we answer ourselves, so the connection stays usable."""
    while client.their_state is h11.SEND_BODY:
        if client.they_are_waiting_for_100_continue:
            return  # the client has not sent its body and need not: the answer tells it no
        event = await next_event(client, reader)
        if isinstance(event, h11.ConnectionClosed):
            raise ClientGone


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close our side, then read what the client is still sending for a moment before closing.

    Closing a socket with unread input makes the kernel send a reset, and a reset makes the client
    drop our error answer unread: so the answer goes first, the rest of the request is discarded.
    """
    try:
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(_LINGER_SECONDS):
            while await reader.read(READ_SIZE):
                pass
    except (TimeoutError, ConnectionError):
        pass


def replayable(request: h11.Request) -> bool:
    """Idempotent and without a body, so sending it twice cannot do anything twice (RFC 9110 §9.2.2)."""
    has_body = any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in request.headers
    )
    return request.method in _IDEMPOTENT_METHODS and not has_body


def end_to_end(headers: Any) -> list[tuple[bytes, bytes]]:
    """The headers without hop-by-hop ones, including those the Connection header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
        if token.strip()
    }
    return [(name, value) for name, value in headers if name not in HOP_BY_HOP and name not in named]


def edit_headers(headers: list[tuple[bytes, bytes]], operations: HeaderOperations) -> list[tuple[bytes, bytes]]:
    """Istio's header operations, in Envoy's order: remove, then set (replacing), then add."""
    if not operations:
        return headers
    replaced = {name.encode() for name, _ in operations.set} | {name.encode() for name in operations.remove}
    edited = [(name, value) for name, value in headers if name not in replaced]
    edited += [(name.encode(), value.encode()) for name, value in operations.set]
    edited += [(name.encode(), value.encode()) for name, value in operations.add]
    return edited


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _prefers_text(request: h11.Request | None) -> bool:
    """Plain text for clients that ask for text and not JSON (browsers, curl -H 'Accept: text/plain')."""
    if request is None:
        return False
    accept = b",".join(value for name, value in request.headers if name == b"accept").lower()
    return b"text/" in accept and b"json" not in accept


def answer(
    client: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> bool:
    """Answer with a complete message the proxy makes itself, if the connection can still take one."""
    if client.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return False
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    if client.their_state not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
        headers.append((b"connection", b"close"))
    writer.write(
        client.send(h11.Response(status_code=status, headers=headers, reason=reason_phrase(status)))
        + client.send(h11.Data(data=body))
        + client.send(h11.EndOfMessage())
    )
    return True


def answer_error(
    client: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request | None, error: ProxyError
) -> bool:
    """Answer `error`: its exact text if it has one (Envoy's answers), else JSON (or text when asked)."""
    log.debug("proxy answers %s %s: %s", error.status, error.reason, error.message)
    if error.text is not None:
        body, content_type = error.text.encode(), b"text/plain"
    elif _prefers_text(request):
        body, content_type = f"{error.message}\n".encode(), b"text/plain; charset=utf-8"
    else:
        document = {"code": error.status, "reason": error.reason, "message": error.message}
        body, content_type = json.dumps(document).encode(), b"application/json"
    return answer(client, writer, error.status, body, [(b"content-type", content_type)])
