"""A bug in a handler answers a 500 `Status` naming the log, and the client's connection stays usable.

The API app runs in a real uvicorn server (in a thread, on an ephemeral port), because what is tested
is what uvicorn does with the connection after the 500.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from localcluster.api.app import ApiConfig, create_app
from localcluster.server import build
from localcluster.settings import Settings

TOKEN = "secret-token"


def _broken(_: Request) -> Response:
    raise KeyError(("kubectl", "Apply", "", ""))


@pytest.fixture
def address(tmp_path: Path) -> Iterator[tuple[str, int]]:
    settings = Settings(home=tmp_path)
    cluster, built = build(settings, TOKEN, "127.0.0.1:0")
    access = built.state.access
    config = ApiConfig(server_address="127.0.0.1:0", max_body_bytes=1 << 20, home=str(tmp_path), log_path="/x/lc.log")
    app = create_app(cluster, config, access, extra_routes=[Route("/api/v1/broken", _broken)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)
        cluster.store.close()
        sock.close()


def _exchange(conn: socket.socket, path: str) -> tuple[int, dict]:
    """One HTTP/1.1 request on an open connection, and its status code and JSON body."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    stream = conn.makefile("rb")
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(stream.read(length))


def test_a_500_names_the_log_and_the_next_request_on_the_connection_works(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as conn:
        status, body = _exchange(conn, "/api/v1/broken")
        assert status == 500
        assert body["kind"] == "Status" and body["reason"] == "InternalError"
        assert "/x/lc.log" in body["message"]
        assert "KeyError" not in body["message"]  # the traceback goes to the log, not to the client
        status, body = _exchange(conn, "/api/v1/namespaces/default")
        assert status == 200 and body["metadata"]["name"] == "default"
