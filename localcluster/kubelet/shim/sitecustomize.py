"""localcluster's pod network shim, loaded by every Python process of a pod (it is on PYTHONPATH).

A pod has no network namespace of its own, so this maps what a container takes for granted onto the
pod's loopback address (`LOCALCLUSTER_POD_IP`): binding 0.0.0.0, '', localhost or 127.0.0.1 binds
the pod address, and connecting to 127.0.0.1 or localhost reaches the pod's own servers. Connections
to the host endpoints in `LOCALCLUSTER_HOST_ENDPOINTS` ("host:port host:port", the API server and the
service proxy) are left alone. Every outgoing loopback connection leaves from the pod address, as a
pod's packets carry its IP: that is how the service proxy knows the caller (and so the namespace in
which short Service names resolve). IPv6 sockets are not mapped. Without `LOCALCLUSTER_POD_IP` it does
nothing, so it is harmless outside a pod.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_POD_IP = os.environ.get("LOCALCLUSTER_POD_IP", "")
_HOST_ENDPOINTS = frozenset(os.environ.get("LOCALCLUSTER_HOST_ENDPOINTS", "").split())
_BIND_ALIASES = frozenset({"", "0.0.0.0", "localhost", "127.0.0.1"})
_CONNECT_ALIASES = frozenset({"localhost", "127.0.0.1"})


def _mapped(sock: socket.socket, address: Any, aliases: frozenset[str], *, connecting: bool) -> Any:
    if sock.family != socket.AF_INET or not isinstance(address, tuple) or len(address) != 2:
        return address
    host, port = address
    if host not in aliases or (connecting and f"{host}:{port}" in _HOST_ENDPOINTS):
        return address
    return (_POD_IP, port)


def _install() -> None:
    original_bind = socket.socket.bind
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def bind(self: socket.socket, address: Any) -> None:
        try:
            original_bind(self, _mapped(self, address, _BIND_ALIASES, connecting=False))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:  # macOS: the pod's alias is missing on lo0
                raise OSError(
                    exc.errno, f"{exc.strerror}: run `sudo ifconfig lo0 alias {_POD_IP}` to give this pod its address"
                ) from None
            raise

    def from_pod(sock: socket.socket, address: Any) -> None:
        """Give an unbound socket the pod address as its source before it connects over loopback."""
        if sock.family != socket.AF_INET or not isinstance(address, tuple) or not str(address[0]).startswith("127."):
            return
        if sock.getsockname() == ("0.0.0.0", 0):
            original_bind(sock, (_POD_IP, 0))

    def connect(self: socket.socket, address: Any) -> None:
        from_pod(self, address)
        original_connect(self, _mapped(self, address, _CONNECT_ALIASES, connecting=True))

    def connect_ex(self: socket.socket, address: Any) -> int:
        from_pod(self, address)
        return original_connect_ex(self, _mapped(self, address, _CONNECT_ALIASES, connecting=True))

    socket.socket.bind = bind  # type: ignore[method-assign,assignment]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


if _POD_IP:
    _install()
