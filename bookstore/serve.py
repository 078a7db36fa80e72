"""Run a bookstore app as a server process: settings from the environment, uvicorn, clean SIGTERM.

Every entry point (``python -m bookstore.monolith``, ``python -m bookstore.services.stock`` ...)
is ``main(service, create_app)``. Configuration problems end the process with exit code 2 and one
line saying what to fix, not a traceback.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from starlette.types import ASGIApp

from bookstore.errors import BookstoreError
from bookstore.settings import Settings, SettingsError

__all__ = ["bind_socket", "main"]

_log = logging.getLogger("bookstore")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: one the OS picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it, and without it a
    # response whose head and body go out in two writes waits for a delayed ACK (40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _exit_cleanly(signum: int, frame: FrameType | None) -> NoReturn:
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler it found
    # installed: by then the app is closed, so this process ends as a success.
    sys.exit(0)


def _fail(service: str, message: str) -> NoReturn:
    print(f"bookstore {service}: {message}", file=sys.stderr)
    sys.exit(2)


def main(service: str, create_app: Callable[[Settings], ASGIApp]) -> None:
    """Serve ``create_app(settings)`` until SIGTERM or SIGINT, logging where it listens."""
    try:
        settings = Settings.from_env(service)
    except SettingsError as exc:
        _fail(service, str(exc))
    logging.basicConfig(
        level=settings.log_level.upper() if settings.log_level != "trace" else "DEBUG",
        format="%(levelname)-9s %(name)s: %(message)s",
    )
    try:
        app = create_app(settings)
    except BookstoreError as exc:
        _fail(service, exc.message)
    try:
        sock = bind_socket(settings.bind, settings.port)
    except OSError as exc:
        _fail(service, f"cannot listen on {settings.bind}:{settings.port}: {exc.strerror or exc}")

    import uvicorn

    host, port = sock.getsockname()[:2]
    _log.info("%s %s listening on http://%s:%d", service, settings.version, host, port)
    # httptools: llhttp parses requests for a third of the CPU h11 takes. asyncio's own loop, never
    # uvloop: uvloop's sockets are libuv's, so a pod's calls would bypass localcluster's network shim
    # (its cluster DNS, its Service routes, its own address as the source of every connection).
    # A line per request only when asked (debug): its logging and the kubelet's log pump cost about a
    # sixth of a call between services, the readiness probes would fill the log with it, and requests
    # are seen through /debug/spans (and, in the mesh, its telemetry).
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        access_log=settings.log_level in ("debug", "trace"),
        lifespan="on",
        timeout_graceful_shutdown=10,
        http="httptools",
        loop="asyncio",
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.Server(config).run(sockets=[sock])
