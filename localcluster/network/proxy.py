"""The service proxy: one HTTP/1.1 forward proxy on loopback that plays kube-proxy for localcluster.

Pods (given HTTP_PROXY) and local clients send `GET http://stock/api/books` to it; the routing table
turns the host into a backend address and the request is relayed over a pooled keep-alive
connection. Both sides are framed by h11 on asyncio streams, so bodies stream through in both
directions as they arrive (chunked uploads, server-sent events) and nothing is buffered whole.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import h11

from localcluster.network.callers import PodAddresses
from localcluster.network.pool import READ_SIZE, Backend, BackendPool
from localcluster.network.routing import (
    DEFAULT_NAMESPACE,
    NAMESPACE_HEADER,
    Destination,
    LoopbackResolver,
    ProxyError,
    RouteRequest,
    RoutingTable,
)
from localcluster.network.services import ServiceResolver
from localcluster.store import Store

log = logging.getLogger("localcluster.proxy")

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the ones the proxy
#: acts on itself: `expect` (it answers 100-continue) and its own namespace header.
_HOP_BY_HOP = frozenset(
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
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: Largest request or response head accepted (h11's default is 16 KiB; cookies and traces can be long).
_MAX_HEAD_BYTES = 64 * 1024
#: How long a connection we are closing on a client still sending is drained before it is closed.
_LINGER_SECONDS = 2.0


class ClientGone(Exception):
    """The client closed its connection before its request was complete."""


class ServiceProxy:
    """The proxy server. `async with ServiceProxy(...)` or start()/stop(); `url` is what HTTP_PROXY gets."""

    def __init__(
        self,
        routes: RoutingTable,
        *,
        callers: PodAddresses | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        default_namespace: str = DEFAULT_NAMESPACE,
        connect_timeout: float = 5.0,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError(f"the service proxy listens on loopback addresses only (127.0.0.0/8), not {host}")
        self.routes = routes
        self._callers = callers
        self._host = host
        self._port = port
        self._default_namespace = default_namespace
        self._pool = BackendPool(connect_timeout=connect_timeout)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_store(cls, store: Store, *, host: str = "127.0.0.1", port: int = 0) -> ServiceProxy:
        """The proxy localcluster runs: pod addresses and Services first, then what later routing adds."""
        return cls(
            RoutingTable([LoopbackResolver(), ServiceResolver(store)]),
            callers=PodAddresses(store),
            host=host,
            port=port,
        )

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the service proxy is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        """The proxy's URL, e.g. `http://127.0.0.1:41234`, for HTTP_PROXY and labkit."""
        host, port = self.address
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port, limit=READ_SIZE, backlog=512)
        if self._callers is not None:
            self._track(asyncio.create_task(self._callers.follow(), name="proxy-pod-addresses"))
        log.info("service proxy listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening, end every open connection and close the backend pool."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.close()
        self._server = None

    async def __aenter__(self) -> ServiceProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._track(task)
        client = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
        try:
            await self._serve(client, reader, writer)
            if client.their_state is h11.SEND_BODY:
                await _linger(reader, writer)  # we answered without reading the whole request
        except h11.RemoteProtocolError as exc:
            reason = "RequestHeaderFieldsTooLarge" if exc.error_status_hint == 431 else "BadRequest"
            error = ProxyError(reason, f"malformed request: {exc}", status=exc.error_status_hint)
            _answer_error(client, writer, None, error)
            await _linger(reader, writer)
        except (ClientGone, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends open connections; a connection's task has nobody else to tell
        except h11.LocalProtocolError:
            log.exception("service proxy: cannot relay a message on this connection; closing it")
        finally:
            writer.close()

    async def _serve(self, client: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the connection's requests one after the other for as long as both sides keep it open."""
        peer = writer.get_extra_info("peername")[0]
        while True:
            event = await _next_event(client, reader)
            if not isinstance(event, h11.Request):
                return  # the client closed, or pipelined past a request we are not going to answer
            await self._exchange(client, event, reader, writer, peer)
            await writer.drain()
            if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                return
            client.start_next_cycle()

    async def _exchange(
        self,
        client: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        try:
            route = self._route_request(request, peer)
            destination = await self.routes.resolve(route)
            if (destination.host, destination.port) == self.address:
                raise ProxyError(
                    "ProxyAddressed",
                    "this is localcluster's service proxy: use it as the HTTP proxy for http://SERVICE/ URLs",
                    status=400,
                )
            backend = await self._pool.acquire(destination.host, destination.port)
        except ProxyError as error:
            await _discard_body(client, reader)
            _answer_error(client, writer, request, error)
            return
        await self._relay(client, request, route, destination, backend, reader, writer, peer)

    def _route_request(self, request: h11.Request, peer: str) -> RouteRequest:
        """What routing needs from the request line and headers; ProxyError 400 if they make no sense."""
        if request.method == b"CONNECT":
            raise ProxyError(
                "MethodNotAllowed",
                "CONNECT (HTTPS through the proxy) is not supported: cluster services speak plain HTTP",
                status=405,
            )
        target = request.target.decode("ascii", "replace")
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers]
        if target.startswith("/"):
            authority = next((value for name, value in headers if name == "host"), "")
            path = target
        else:
            parts = urlsplit(target)
            if parts.scheme.lower() != "http" or not parts.netloc:
                raise ProxyError("BadRequest", f"cannot proxy {target!r}: only http:// URLs are routed", status=400)
            authority = parts.netloc
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host, port = _split_authority(authority)
        return RouteRequest(
            host=host,
            port=port,
            namespace=self._caller_namespace(peer, headers),
            client=peer,
            method=request.method.decode("ascii"),
            path=path,
            headers=tuple(headers),
        )

    def _caller_namespace(self, peer: str, headers: list[tuple[str, str]]) -> str:
        """Where the caller's short names resolve, most trustworthy source first.

        The calling pod's namespace (pods connect from their own address); else the user of a proxy
        URL such as `http://bookstore@127.0.0.1:PORT` (clients send it as Proxy-Authorization, so a
        kubelet can give each pod its own); else the namespace header; else the default.
        """
        if self._callers is not None and (namespace := self._callers.namespace_of(peer)):
            return namespace
        given = _proxy_user(headers) or next((v.strip() for n, v in headers if n == NAMESPACE_HEADER), "")
        if not given:
            return self._default_namespace
        if not _NAMESPACE.match(given):
            raise ProxyError("BadRequest", f"{given!r} is not a namespace name", status=400)
        return given

    async def _relay(
        self,
        client: h11.Connection,
        request: h11.Request,
        route: RouteRequest,
        destination: Destination,
        backend: Backend,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        """Send the request to the backend and its answer back, each body as it arrives."""
        outgoing = h11.Request(
            method=request.method,
            target=route.path.encode(),
            headers=_forwarded_request_headers(request, route, peer),
        )
        answered = False
        try:
            await _send_request(client, reader, writer, backend, outgoing)
            try:
                response = await _next_response(backend)
            except BackendFailed:
                if not (backend.reused and _replayable(request)):
                    raise
                # The backend closed the kept-alive connection just as we reused it (its idle
                # timeout): as HTTP clients do, send a request that is safe to repeat once more.
                backend.close()
                backend = await self._pool.acquire(destination.host, destination.port, fresh=True)
                await _backend_write(
                    backend, (backend.http.send(outgoing) or b"") + (backend.http.send(h11.EndOfMessage()) or b"")
                )
                response = await _next_response(backend)
            answered = True
            head = h11.Response(
                status_code=response.status_code, headers=_end_to_end(response.headers), reason=response.reason
            )
            await _send_response(client, writer, backend, head)
        except BackendFailed as failure:
            backend.close()
            if answered:
                raise ClientGone from failure  # the answer is cut short: so must the client's connection be
            await _discard_body(client, reader)
            _answer_error(
                client,
                writer,
                request,
                ProxyError(
                    "BackendClosed",
                    f"{_describe(destination)} closed the connection without a complete answer ({failure})",
                    status=502,
                ),
            )
            return
        except ProxyError as error:  # the backend refused the repeated request's new connection
            _answer_error(client, writer, request, error)
            return
        except BaseException:
            backend.close()
            raise
        self._pool.release(backend)


class BackendFailed(Exception):
    """The backend's side of an exchange broke (it closed, reset or sent something that is not HTTP)."""


async def _next_event(connection: h11.Connection, reader: asyncio.StreamReader) -> Any:
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


async def _backend_write(backend: Backend, data: bytes) -> None:
    try:
        backend.writer.write(data)
        await backend.writer.drain()
    except OSError as exc:
        raise BackendFailed(str(exc) or type(exc).__name__) from exc


async def _send_request(
    client: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    backend: Backend,
    outgoing: h11.Request,
) -> None:
    """Write the request head and stream the client's body after it, batching what is already read."""
    pending = [backend.http.send(outgoing) or b""]
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            await _backend_write(backend, b"".join(pending))
            pending.clear()
            if client.they_are_waiting_for_100_continue:
                writer.write(client.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            client.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Data):
            pending.append(backend.http.send(h11.Data(data=event.data)) or b"")
        elif isinstance(event, h11.EndOfMessage):
            pending.append(backend.http.send(h11.EndOfMessage(headers=event.headers)) or b"")
            await _backend_write(backend, b"".join(pending))
            return
        else:
            raise ClientGone


async def _next_response(backend: Backend) -> h11.Response:
    """The backend's final response head (100 Continue and other interim answers are skipped)."""
    while True:
        event = _backend_event(backend)
        if event is h11.NEED_DATA:
            await _backend_receive(backend)
        elif isinstance(event, h11.Response):
            return event


async def _send_response(
    client: h11.Connection, writer: asyncio.StreamWriter, backend: Backend, head: h11.Response
) -> None:
    """Relay the head and body: everything read so far goes out before waiting for more (streaming)."""
    pending = [client.send(head) or b""]
    while True:
        event = _backend_event(backend)
        if event is h11.NEED_DATA:
            writer.write(b"".join(pending))
            pending.clear()
            await writer.drain()
            await _backend_receive(backend)
        elif isinstance(event, h11.Data):
            pending.append(client.send(h11.Data(data=event.data)) or b"")
        elif isinstance(event, h11.EndOfMessage):
            pending.append(client.send(h11.EndOfMessage(headers=event.headers)) or b"")
            writer.write(b"".join(pending))
            return


async def _discard_body(client: h11.Connection, reader: asyncio.StreamReader) -> None:
    """Read and drop the rest of a request we answer ourselves, so the connection stays usable."""
    while client.their_state is h11.SEND_BODY:
        if client.they_are_waiting_for_100_continue:
            return  # the client has not sent its body and need not: the answer tells it no
        event = await _next_event(client, reader)
        if isinstance(event, h11.ConnectionClosed):
            raise ClientGone


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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


def _replayable(request: h11.Request) -> bool:
    """Idempotent and without a body, so sending it twice cannot do anything twice (RFC 9110 §9.2.2)."""
    has_body = any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in request.headers
    )
    return request.method in _IDEMPOTENT_METHODS and not has_body


def _forwarded_request_headers(request: h11.Request, route: RouteRequest, peer: str) -> list[tuple[bytes, bytes]]:
    """End-to-end headers, Host as the client addressed it, the framing h11 needs, and X-Forwarded-For."""
    headers = _end_to_end(request.headers)
    has_host = any(name == b"host" for name, _ in headers)
    if not has_host:
        port = "" if route.port == 80 else f":{route.port}"
        headers.insert(0, (b"host", f"{route.host}{port}".encode()))
    if any(name == b"transfer-encoding" for name, _ in request.headers):
        headers.append((b"transfer-encoding", b"chunked"))
    forwarded = next((value for name, value in headers if name == b"x-forwarded-for"), None)
    headers = [(name, value) for name, value in headers if name != b"x-forwarded-for"]
    headers.append((b"x-forwarded-for", forwarded + b", " + peer.encode() if forwarded else peer.encode()))
    return headers


def _end_to_end(headers: Any) -> list[tuple[bytes, bytes]]:
    """The headers without hop-by-hop ones, including those the Connection header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
        if token.strip()
    }
    return [(name, value) for name, value in headers if name not in _HOP_BY_HOP and name not in named]


def _proxy_user(headers: list[tuple[str, str]]) -> str:
    """The user name of `Proxy-Authorization: Basic ...`, or "" if there is none (or it is not Basic)."""
    credentials = next((value for name, value in headers if name == "proxy-authorization"), "")
    scheme, _, encoded = credentials.strip().partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode().partition(":")[0].strip()
    except (binascii.Error, UnicodeDecodeError):
        raise ProxyError("BadRequest", "Proxy-Authorization is not valid Basic credentials", status=400) from None


def _split_authority(authority: str) -> tuple[str, int]:
    if not authority:
        raise ProxyError("BadRequest", "the request names no host (no absolute URL and no Host header)", status=400)
    try:
        parts = urlsplit(f"//{authority}")
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ProxyError("BadRequest", f"cannot read host and port from {authority!r}", status=400) from None
    if not host:
        raise ProxyError("BadRequest", f"cannot read a host from {authority!r}", status=400)
    return host, port or 80


def _describe(destination: Destination) -> str:
    where = f"{destination.host}:{destination.port}"
    return f"the backend {where} of {destination.via}" if destination.via else f"the backend {where}"


def _prefers_text(request: h11.Request | None) -> bool:
    """Plain text for clients that ask for text and not JSON (browsers, curl -H 'Accept: text/plain')."""
    if request is None:
        return False
    accept = b",".join(value for name, value in request.headers if name == b"accept").lower()
    return b"text/" in accept and b"json" not in accept


def _answer_error(
    client: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request | None, error: ProxyError
) -> None:
    """Answer `error` as JSON (or plain text when asked), if the connection can still take an answer."""
    if client.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    log.debug("proxy answers %s %s: %s", error.status, error.reason, error.message)
    if _prefers_text(request):
        body, content_type = f"{error.message}\n".encode(), b"text/plain; charset=utf-8"
    else:
        document = {"code": error.status, "reason": error.reason, "message": error.message}
        body, content_type = json.dumps(document).encode(), b"application/json"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if client.their_state not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
        headers.append((b"connection", b"close"))
    writer.write(
        client.send(h11.Response(status_code=error.status, headers=headers, reason=_reason_phrase(error.status)))
        + client.send(h11.Data(data=body))
        + client.send(h11.EndOfMessage())
    )


def _reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
