"""Small HTTP servers standing in for pods: real uvicorn on loopback addresses, in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Backend:
    """One pod's server: its name in every answer, and a gate the streaming route waits on."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    release_stream: asyncio.Event = field(default_factory=asyncio.Event)
    #: How many requests to /flaky answer 503 before it answers 200.
    failures_left: int = 0
    #: (method, path, host) of every request that reached /whoami, /flaky or /slow, in order.
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        def record(request: Request) -> None:
            self.seen.append((request.method, request.url.path, request.headers.get("host", "")))

        async def whoami(request: Request) -> JSONResponse:
            record(request)
            client = request.client
            return JSONResponse(
                {
                    "server": self.name,
                    "client": [client.host, client.port] if client else None,
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": [[k, v] for k, v in request.headers.items()],
                },
                headers={"x-served-by": self.name},
            )

        async def echo(request: Request) -> Response:
            body = await request.body()
            return Response(body, headers={"x-length": str(len(body))}, media_type="application/octet-stream")

        async def stream(_request: Request) -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"data: first\n\n"
                await self.release_stream.wait()
                yield b"data: second\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")

        async def empty(_request: Request) -> Response:
            return Response(status_code=204)

        async def flaky(request: Request) -> Response:
            """503 while failures are left, then 200 with the request's body: a backend that recovers."""
            record(request)
            body = await request.body()
            if self.failures_left > 0:
                self.failures_left -= 1
                return Response(b"busy", status_code=503, headers={"x-served-by": self.name})
            return Response(body or b"ok", headers={"x-served-by": self.name})

        async def slow(request: Request) -> Response:
            """Answers after `?seconds=` (a backend that is slow, for timeouts)."""
            record(request)
            await asyncio.sleep(float(request.query_params.get("seconds", "0")))
            return Response(b"slow", headers={"x-served-by": self.name})

        return Starlette(
            routes=[
                Route("/whoami", whoami, methods=["GET", "HEAD", "DELETE"]),
                Route("/echo", echo, methods=["POST", "PUT"]),
                Route("/stream", stream),
                Route("/empty", empty),
                Route("/flaky", flaky, methods=["GET", "POST"]),
                Route("/slow", slow),
            ]
        )


def free_socket(host: str) -> socket.socket:
    # IPPROTO_TCP explicitly, or asyncio leaves Nagle on and small answers wait for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def wait_until(condition: object, what: str, timeout: float = 10.0) -> None:
    """Poll `condition()` with a short back-off until it holds, or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


@asynccontextmanager
async def serving(backend: Backend) -> AsyncIterator[Backend]:
    """Run the backend on a free port of its loopback address until the block ends."""
    sock = free_socket(backend.host)
    backend.port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            backend.app(), log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done(), f"backend {backend.name} to start")
        yield backend
    finally:
        backend.release_stream.set()
        server.should_exit = True
        await task
        sock.close()
