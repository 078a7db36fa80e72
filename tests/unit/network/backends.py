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

    def app(self) -> Starlette:
        async def whoami(request: Request) -> JSONResponse:
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

        return Starlette(
            routes=[
                Route("/whoami", whoami, methods=["GET", "HEAD", "DELETE"]),
                Route("/echo", echo, methods=["POST", "PUT"]),
                Route("/stream", stream),
                Route("/empty", empty),
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
