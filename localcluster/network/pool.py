"""Keep-alive HTTP/1.1 connections to backends, reused across requests as Envoy's upstream pools are.

Reusing a connection saves a TCP handshake and a new server-side task per request, which is most of
what a proxy would otherwise add to a call on loopback.
"""

from __future__ import annotations

import asyncio

import h11

from localcluster.network.routing import ProxyError

#: Read size for both directions: large enough that a typical response arrives in one read.
READ_SIZE = 64 * 1024


class Backend:
    """One connection to a backend, with the HTTP/1.1 client state machine that frames its messages."""

    __slots__ = ("address", "http", "reader", "reused", "writer")

    def __init__(self, address: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.address = address
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT)
        #: Taken from the pool rather than new: the backend may have closed it as we took it.
        self.reused = False

    @property
    def closed(self) -> bool:
        """The backend hung up (or we did): the connection cannot carry another request."""
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class BackendPool:
    """Idle connections per backend address; a connection goes back only after a complete exchange."""

    def __init__(self, *, connect_timeout: float = 5.0, max_idle_per_backend: int = 32) -> None:
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle_per_backend
        self._idle: dict[tuple[str, int], list[Backend]] = {}

    async def acquire(self, host: str, port: int, *, fresh: bool = False) -> Backend:
        """An idle connection to host:port (unless `fresh`), or a new one; ProxyError 502/504 if unreachable."""
        address = (host, port)
        idle = [] if fresh else self._idle.get(address)
        while idle:
            backend = idle.pop()
            if not backend.closed:
                backend.reused = True
                return backend
            backend.close()
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except TimeoutError:
            raise ProxyError(
                "BackendTimeout",
                f"the backend {host}:{port} did not accept a connection within {self._connect_timeout:g} s",
                status=504,
            ) from None
        except OSError as exc:
            raise ProxyError(
                "BackendRefused",
                f"the backend {host}:{port} refused the connection ({exc.strerror or exc}): "
                "is the pod's server listening on that port?",
                status=502,
            ) from None
        return Backend(address, reader, writer)

    def release(self, backend: Backend) -> None:
        """Keep the connection for the next request if its exchange completed cleanly, else close it."""
        http = backend.http
        if http.our_state is h11.DONE and http.their_state is h11.DONE and not backend.closed:
            http.start_next_cycle()
            idle = self._idle.setdefault(backend.address, [])
            if len(idle) < self._max_idle:
                idle.append(backend)
                return
        backend.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for backend in idle:
                backend.close()
        self._idle.clear()
