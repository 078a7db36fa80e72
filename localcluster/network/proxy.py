"""The service proxy: one HTTP/1.1 forward proxy on loopback that plays kube-proxy for localcluster.

Pods (given HTTP_PROXY) and local clients send `GET http://stock/api/books` to it; the routing table
turns the host into a `Route` and the proxy carries it out: a direct answer or an injected fault
if the route's policy says so, then attempts (retried and timed as the policy says) over pooled
keep-alive connections. Both sides are framed by h11 on asyncio streams, so bodies stream through in
both directions as they arrive (chunked uploads, server-sent events); a body is read ahead only
when it may have to be sent twice (retries, mirroring), up to a buffer limit as in Envoy.

It forwards to nothing but this cluster's pods, whoever chose the destination; a request head must
arrive within a timeout, and each client may hold a bounded number of connections.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

from localcluster.network.callers import PodAddresses
from localcluster.network.hostnames import PodHostnameResolver
from localcluster.network.http1 import (
    BackendFailed,
    Body,
    ClientGone,
    answer,
    answer_error,
    backend_write,
    discard_body,
    drain_response,
    edit_headers,
    end_to_end,
    linger,
    next_event,
    next_response,
    read_body,
    replayable,
    send_request,
    send_response,
)
from localcluster.network.knative import KnativeResolver
from localcluster.network.mesh.resolver import MeshResolver
from localcluster.network.pool import READ_SIZE, Backend, BackendPool
from localcluster.network.routing import (
    DEFAULT_NAMESPACE,
    NAMESPACE_HEADER,
    Destination,
    Exchange,
    Fault,
    LoopbackResolver,
    ProxyError,
    Retries,
    Route,
    RouteRequest,
    RoutingTable,
    Try,
)
from localcluster.network.services import ClusterIPResolver, ServiceResolver
from localcluster.store import Store

log = logging.getLogger("localcluster.proxy")

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: Largest request or response head accepted (h11's default is 16 KiB; cookies and traces can be long).
_MAX_HEAD_BYTES = 64 * 1024
#: Envoy's default retry back-off: jittered exponential from 25 ms, at most 250 ms.
_RETRY_BASE_SECONDS = 0.025
_RETRY_MAX_SECONDS = 0.25
#: What a failure before any answer is called in Envoy's retry_on vocabulary, and which conditions retry it.
_RETRIED_FAILURES = {
    "connect-failure": frozenset({"connect-failure", "5xx", "gateway-error"}),
    "reset": frozenset({"reset", "5xx", "gateway-error"}),
    "timeout": frozenset({"reset", "5xx", "gateway-error"}),
}
#: Envoy's own answers for failures on mesh routes, with their response flags.
_ENVOY_CONNECT_FAILURE = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
_ENVOY_RESET = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
_ENVOY_TIMEOUT = "upstream request timeout"

Observer = Callable[[Exchange], None]
#: The context of an attempt no timeout bounds (cheaper than asyncio.timeout_at(None) on every request).
_UNBOUNDED = contextlib.nullcontext()


@dataclass(frozen=True)
class ProxyLimits:
    """What one client may hold of the proxy, and how much of a body is kept for retries."""

    #: Seconds a request head may take to arrive once its first byte has (408 after that).
    header_timeout: float = 10.0
    #: Seconds a kept-alive connection may sit idle between requests before the proxy closes it.
    idle_timeout: float = 120.0
    #: Open connections one client address may hold; more are answered 503 and closed.
    max_connections_per_client: int = 256
    #: Bytes of a request body kept so it can be sent again (Envoy's default buffer limit, 1 MiB).
    retry_buffer_bytes: int = 1024 * 1024


@dataclass
class _Call:
    """One request on its way through the proxy: the connection it came on and what became of it."""

    client: h11.Connection
    request: h11.Request
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.monotonic)
    route_request: RouteRequest | None = None
    route: Route | None = None
    destination: Destination | None = None
    status: int = 0
    attempts: int = 0
    flags: set[str] = field(default_factory=set)
    request_bytes: int = 0
    response_bytes: int = 0
    tries: list[Try] = field(default_factory=list)

    @property
    def answering(self) -> bool:
        """The answer's head has gone out: a failure now can only cut the connection."""
        return self.client.our_state not in (h11.IDLE, h11.SEND_RESPONSE)


class _AttemptFailed(Exception):
    """An attempt got no answer: `kind` is connect-failure, reset or timeout; `error` what to answer."""

    def __init__(self, kind: str, error: ProxyError) -> None:
        super().__init__(error.message)
        self.kind = kind
        self.error = error


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
        limits: ProxyLimits | None = None,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError(f"the service proxy listens on loopback addresses only (127.0.0.0/8), not {host}")
        self.routes = routes
        self._callers = callers
        self._host = host
        self._port = port
        self._default_namespace = default_namespace
        self._limits = limits or ProxyLimits()
        self._pool = BackendPool(connect_timeout=connect_timeout)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: Counter[str] = Counter()
        self._observers: list[Observer] = []
        self._random = random.Random()

    @classmethod
    def for_store(
        cls, store: Store, *, host: str = "127.0.0.1", port: int = 0, limits: ProxyLimits | None = None
    ) -> ServiceProxy:
        """The proxy localcluster runs: pod addresses and Services, and what later routing adds in front."""
        mesh = MeshResolver(store)
        routes = RoutingTable(
            [
                mesh,
                KnativeResolver(store),
                ClusterIPResolver(store),  # before loopback addresses: nothing listens on a cluster IP
                LoopbackResolver(),
                PodHostnameResolver(store),
                ServiceResolver(store),
            ]
        )
        routes.add_inbound(mesh.inbound)
        proxy = cls(
            routes,
            callers=PodAddresses(store),
            host=host,
            port=port,
            limits=limits,
        )
        proxy.observe(mesh.telemetry)
        return proxy

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

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Hand every finished request's `Exchange` to `observer` (telemetry); returns how to stop.

        Observers run on the proxy's loop after each answer: they must be quick and must not raise.
        """
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

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
        peer = writer.get_extra_info("peername")[0]
        self._connections[peer] += 1
        client = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
        try:
            if self._connections[peer] > self._limits.max_connections_per_client:
                error = ProxyError(
                    "TooManyConnections",
                    f"{peer} already holds {self._limits.max_connections_per_client} connections to the service "
                    "proxy: reuse connections (keep-alive) or close idle ones",
                )
                answer_error(client, writer, None, error)
                await linger(reader, writer)
                return
            await self._serve(client, reader, writer, peer)
            if client.their_state is h11.SEND_BODY:
                await linger(reader, writer)  # we answered without reading the whole request
        except h11.RemoteProtocolError as exc:
            reason = "RequestHeaderFieldsTooLarge" if exc.error_status_hint == 431 else "BadRequest"
            answer_error(
                client, writer, None, ProxyError(reason, f"malformed request: {exc}", status=exc.error_status_hint)
            )
            await linger(reader, writer)
        except (ClientGone, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends open connections; a connection's task has nobody else to tell
        except h11.LocalProtocolError:
            log.exception("service proxy: cannot relay a message on this connection; closing it")
        finally:
            self._connections[peer] -= 1
            if not self._connections[peer]:
                del self._connections[peer]
            writer.close()

    async def _serve(
        self, client: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        """Answer the connection's requests one after the other for as long as both sides keep it open."""
        while True:
            event = await self._next_request(client, reader, writer)
            if not isinstance(event, h11.Request):
                return  # the client closed, went idle, or pipelined past a request we are not going to answer
            await self._exchange(_Call(client, event, reader, writer, peer))
            await writer.drain()
            if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                return
            client.start_next_cycle()

    async def _next_request(
        self, client: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> object:
        """The next request head: the connection may idle before it starts, but not dawdle once it has."""
        event = client.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            async with asyncio.timeout(self._limits.idle_timeout):
                client.receive_data(await reader.read(READ_SIZE))
        except TimeoutError:
            return None
        try:
            async with asyncio.timeout(self._limits.header_timeout):
                return await next_event(client, reader)
        except TimeoutError:
            error = ProxyError(
                "RequestTimeout",
                f"the request head did not arrive within {self._limits.header_timeout:g} s",
                status=408,
                text="request header timeout",
            )
            answer_error(client, writer, None, error)
            return None

    async def _exchange(self, call: _Call) -> None:
        """Route one request and carry out its route; every failure becomes an answer, then telemetry."""
        try:
            call.route_request = self._route_request(call.request, call.peer)
            call.route = await self.routes.resolve(call.route_request)
            await self._forward(call, call.route)
        except ProxyError as error:
            if error.flag:
                call.flags.add(error.flag)
            await discard_body(call.client, call.reader)
            if answer_error(call.client, call.writer, call.request, error):
                call.status = error.status
        except (ClientGone, ConnectionError):
            if not call.flags & {"UT", "UC"}:
                call.flags.add("DC")  # the client went away, not the backend
            raise
        finally:
            if self._observers and call.route_request is not None:
                self._report(call)

    async def _forward(self, call: _Call, route: Route) -> None:
        """The route's policy in Envoy's order: a direct answer, a fault, a mirror, then the attempts."""
        policy = route.policy
        if policy.direct is not None:
            direct = policy.direct
            await discard_body(call.client, call.reader)
            headers = [(name.encode(), value.encode()) for name, value in direct.headers]
            if answer(call.client, call.writer, direct.status, direct.body, headers):
                call.status = direct.status
            return
        if policy.fault is not None:
            await self._inject_fault(call, policy.fault)
        body = None
        if policy.retries is not None or policy.mirror is not None:
            body = await read_body(call.client, call.reader, call.writer, self._limits.retry_buffer_bytes)
            call.request_bytes = body.size
        outgoing = self._outgoing(call, route)
        if policy.mirror is not None and body is not None and body.complete and self._chance(policy.mirror_percent):
            self._track(asyncio.create_task(self._shadow(policy.mirror, outgoing, body, call.route_request)))
        retries = policy.retries if body is None or body.complete else None
        await self._attempts(call, route, outgoing, body, retries)

    async def _inject_fault(self, call: _Call, fault: Fault) -> None:
        if fault.delay and self._chance(fault.delay_percent):
            call.flags.add("DI")
            await asyncio.sleep(fault.delay)  # the delay is the product here: Istio's fixedDelay
        if fault.abort_status is not None and self._chance(fault.abort_percent):
            raise ProxyError(
                "FaultInjected",
                f"aborted with {fault.abort_status} by the route's fault injection",
                status=fault.abort_status,
                text="fault filter abort",
                flag="FI",
            )

    async def _attempts(
        self, call: _Call, route: Route, outgoing: h11.Request, body: Body | None, retries: Retries | None
    ) -> None:
        """Try, and retry as `retries` allows, until an answer is relayed or no attempt is left."""
        loop = asyncio.get_running_loop()
        policy = route.policy
        deadline = None if policy.timeout is None else loop.time() + policy.timeout
        allowed = 1 + (retries.attempts if retries is not None else 0)
        for attempt in range(1, allowed + 1):
            last = attempt == allowed
            if attempt > 1:
                await self._back_off(attempt - 1, deadline)
            call.attempts = attempt
            try_deadline = deadline
            if retries is not None and retries.per_try_timeout is not None:
                per_try = loop.time() + retries.per_try_timeout
                try_deadline = per_try if deadline is None else min(deadline, per_try)
            destination: Destination | None = None
            backend: Backend | None = None
            reached: float | None = None  # when the attempt got past the checks to its destination
            answered = 0
            flags: set[str] = set()
            try:
                async with asyncio.timeout_at(try_deadline) if try_deadline is not None else _UNBOUNDED:
                    destination = call.destination = await route.choose()
                    self._check_destination(destination)
                    reached = time.monotonic()
                    try:
                        for step in self.routes.inbound:
                            step(call.route_request, destination)  # type: ignore[arg-type]
                    except ProxyError as refusal:  # the destination's sidecar answers it
                        answered = refusal.status
                        flags.add(refusal.flag)
                        raise
                    backend, head = await self._send(call, destination, outgoing, body)
                    answered = head.status_code
                    if not last and retries is not None and _retries_status(head.status_code, retries):
                        continue
                    if attempt > 1 and retries is not None and _retries_status(head.status_code, retries):
                        call.flags.add("URX")
                    await self._relay_response(call, route, backend, head)
                    self._pool.release(backend)
                    backend = None
                    return
            except TimeoutError:
                flags.add("UT")
                if call.answering:
                    call.flags.add("UT")
                    raise ClientGone from None  # the answer is cut short: so must the client's connection be
                whole_deadline_passed = deadline is not None and loop.time() >= deadline
                if last or whole_deadline_passed or not _retries_failure("timeout", retries):
                    raise self._timeout_error(destination, route) from None
            except _AttemptFailed as failure:
                flags.add(failure.error.flag)
                if last or not _retries_failure(failure.kind, retries):
                    if attempt > 1:
                        call.flags.add("URX")
                    raise failure.error from None
            finally:
                if backend is not None:
                    backend.close()
                if destination is not None and destination.done is not None:
                    destination.done()
                if destination is not None and reached is not None:
                    flags.discard("")
                    call.tries.append(Try(destination, answered, time.monotonic() - reached, frozenset(flags)))

    async def _back_off(self, retry: int, deadline: float | None) -> None:
        """Envoy's jittered exponential back-off before retry number `retry` (never past the deadline)."""
        ceiling = min(_RETRY_BASE_SECONDS * (2**retry - 1), _RETRY_MAX_SECONDS)
        pause = self._random.uniform(0, ceiling)
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - asyncio.get_running_loop().time()))
        await asyncio.sleep(pause)

    def _outgoing(self, call: _Call, route: Route) -> h11.Request:
        """The request as the backend gets it: end-to-end headers, rewrites and header edits applied."""
        assert call.route_request is not None
        policy = route.policy
        headers = _forwarded_request_headers(call.request, call.route_request, call.peer)
        if policy.authority is not None:
            headers = [(b"host", policy.authority.encode()), *((n, v) for n, v in headers if n != b"host")]
        headers = edit_headers(headers, policy.request_headers)
        target = policy.path if policy.path is not None else call.route_request.path
        return h11.Request(method=call.request.method, target=target.encode(), headers=headers)

    def _check_destination(self, destination: Destination) -> None:
        """Forward only to this cluster's pods, whatever a resolver (or an Endpoints object) names."""
        if self._server is not None and (destination.host, destination.port) == self.address:
            raise ProxyError(
                "ProxyAddressed",
                "this is localcluster's service proxy: use it as the HTTP proxy for http://SERVICE/ URLs",
                status=400,
            )
        if self._callers is None or self._callers.is_pod_address(destination.host):
            return
        raise ProxyError(
            "OutsideCluster",
            f"{destination.host}:{destination.port} is not a pod of this cluster"
            + (f" (an endpoint of {destination.via})" if destination.via else "")
            + ": the service proxy forwards only to this localcluster's Services and pods",
            status=403,
        )

    async def _send(
        self, call: _Call, destination: Destination, outgoing: h11.Request, body: Body | None
    ) -> tuple[Backend, h11.Response]:
        """Send the request to `destination` and read its answer's head; _AttemptFailed if none came."""
        backend = await self._connect(destination, call)
        try:
            call.request_bytes = await send_request(call.client, call.reader, call.writer, backend, outgoing, body)
            try:
                return backend, await next_response(backend)
            except BackendFailed:
                if not (backend.reused and replayable(call.request)):
                    raise
                # The backend closed the kept-alive connection just as we reused it (its idle
                # timeout): as HTTP clients do, send a request that is safe to repeat once more.
                backend.close()
                backend = await self._connect(destination, call, fresh=True)
                await backend_write(
                    backend, (backend.http.send(outgoing) or b"") + (backend.http.send(h11.EndOfMessage()) or b"")
                )
                return backend, await next_response(backend)
        except BackendFailed as failure:
            backend.close()
            error = ProxyError(
                "BackendClosed",
                f"{_describe(destination)} closed the connection without a complete answer ({failure})",
                status=502,
            )
            raise _AttemptFailed("reset", self._as_envoy(call, error, 503, _ENVOY_RESET, "UC")) from failure
        except BaseException:
            backend.close()
            raise

    async def _connect(self, destination: Destination, call: _Call, *, fresh: bool = False) -> Backend:
        try:
            return await self._pool.acquire(destination.host, destination.port, fresh=fresh)
        except ProxyError as error:
            raise _AttemptFailed(
                "connect-failure", self._as_envoy(call, error, 503, _ENVOY_CONNECT_FAILURE, "UF")
            ) from None

    @staticmethod
    def _as_envoy(call: _Call, error: ProxyError, status: int, text: str, flag: str) -> ProxyError:
        """On mesh routes a failure is answered as Envoy answers it; elsewhere with the proxy's reason."""
        error.flag = flag
        if call.route is not None and call.route.policy.envoy_answers:
            error.status, error.text = status, text
        return error

    def _timeout_error(self, destination: Destination | None, route: Route) -> ProxyError:
        where = _describe(destination) if destination is not None else "the route"
        error = ProxyError("UpstreamTimeout", f"{where} did not answer in time", status=504, flag="UT")
        if route.policy.envoy_answers:
            error.text = _ENVOY_TIMEOUT
        return error

    async def _relay_response(self, call: _Call, route: Route, backend: Backend, head: h11.Response) -> None:
        headers = edit_headers(_end_to_end_response(head), route.policy.response_headers)
        outgoing = h11.Response(status_code=head.status_code, headers=headers, reason=head.reason)
        call.status = head.status_code
        try:
            call.response_bytes = await send_response(call.client, call.writer, backend, outgoing)
        except BackendFailed as failure:
            call.flags.add("UC")
            raise ClientGone from failure  # the answer is cut short: so must the client's connection be

    async def _shadow(self, mirror: Route, upstream: h11.Request, body: Body, request: RouteRequest | None) -> None:
        """Send a copy of the request to the mirror's backend and drop its answer (Istio's mirror).

        The copy is the request as it goes upstream (rewrites and header edits applied), with
        `-shadow` added to its Host, as Envoy builds its shadows from the finished request.
        """
        headers = [(name, _shadow_host(value) if name == b"host" else value) for name, value in upstream.headers]
        outgoing = h11.Request(method=upstream.method, target=upstream.target, headers=headers)
        destination: Destination | None = None
        backend: Backend | None = None
        try:
            destination = await mirror.choose()
            self._check_destination(destination)
            for step in self.routes.inbound:
                step(request, destination)  # type: ignore[arg-type]
            backend = await self._pool.acquire(destination.host, destination.port)
            data = [backend.http.send(outgoing) or b""]
            data += [backend.http.send(h11.Data(data=chunk)) or b"" for chunk in body.chunks]
            data.append(backend.http.send(h11.EndOfMessage(headers=body.trailers)) or b"")
            await backend_write(backend, b"".join(data))
            await next_response(backend)
            await drain_response(backend)
            self._pool.release(backend)
            backend = None
        except (ProxyError, BackendFailed) as exc:
            log.debug("mirrored request to %s not delivered: %s", destination, exc)
        finally:
            if backend is not None:
                backend.close()
            if destination is not None and destination.done is not None:
                destination.done()

    def _report(self, call: _Call) -> None:
        assert call.route_request is not None
        labels = dict(call.route.labels) if call.route is not None else {}
        if call.destination is not None:
            labels.update(call.destination.labels)
        exchange = Exchange(
            request=call.route_request,
            labels=labels,
            destination=call.destination,
            status=call.status,
            started=call.started,
            duration=time.monotonic() - call.clock,
            attempts=call.attempts,
            flags=frozenset(call.flags),
            request_bytes=call.request_bytes,
            response_bytes=call.response_bytes,
            tries=tuple(call.tries),
        )
        for observer in self._observers:
            try:
                observer(exchange)
            except Exception:
                log.exception("service proxy: a telemetry observer failed")

    def _chance(self, percent: float) -> bool:
        return self._random.random() * 100 < percent

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
        caller = self._callers.caller_at(peer) if self._callers is not None else None
        return RouteRequest(
            host=host,
            port=port,
            namespace=caller.namespace if caller is not None else self._caller_namespace(headers),
            client=peer,
            method=request.method.decode("ascii"),
            path=path,
            headers=tuple(headers),
            caller=caller,
        )

    def _caller_namespace(self, headers: list[tuple[str, str]]) -> str:
        """Where a client that is not a pod means its short names: its proxy user, the header, the default.

        (A pod's own namespace wins over both: pods connect from their own address.) The user of a
        proxy URL such as `http://bookstore@127.0.0.1:PORT` arrives as Proxy-Authorization.
        """
        given = _proxy_user(headers) or next((v.strip() for n, v in headers if n == NAMESPACE_HEADER), "")
        if not given:
            return self._default_namespace
        if not _NAMESPACE.match(given):
            raise ProxyError("BadRequest", f"{given!r} is not a namespace name", status=400)
        return given


def _retries_status(status: int, retries: Retries) -> bool:
    """Whether `retries` retries an answer with this status (Envoy's retry_on for responses)."""
    on = retries.retry_on
    return (
        ("5xx" in on and status >= 500)
        or ("gateway-error" in on and status in (502, 503, 504))
        or ("retriable-4xx" in on and status == 409)
        or ("retriable-status-codes" in on and status in retries.retriable_status_codes)
    )


def _retries_failure(kind: str, retries: Retries | None) -> bool:
    """Whether `retries` retries a failure with no answer (connect-failure, reset or timeout)."""
    return retries is not None and bool(_RETRIED_FAILURES[kind] & retries.retry_on)


def _forwarded_request_headers(request: h11.Request, route: RouteRequest, peer: str) -> list[tuple[bytes, bytes]]:
    """End-to-end headers, Host as the client addressed it, the framing h11 needs, and X-Forwarded-For."""
    headers = end_to_end(request.headers)
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


def _end_to_end_response(head: h11.Response) -> list[tuple[bytes, bytes]]:
    return end_to_end(head.headers)


def _shadow_host(host: bytes) -> bytes:
    """Envoy's name for a mirrored request's Host: `-shadow` after the host name, before any port."""
    name, colon, port = host.partition(b":")
    return name + b"-shadow" + colon + port


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
