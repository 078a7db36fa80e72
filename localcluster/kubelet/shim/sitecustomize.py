"""localcluster's pod network shim, loaded by every Python process of a pod (it is on PYTHONPATH).

A pod has no network namespace of its own, so this maps what a container takes for granted onto the
pod's loopback address (`LOCALCLUSTER_POD_IP`): binding 0.0.0.0, '', localhost or 127.0.0.1 binds
the pod address, and connecting to 127.0.0.1 or localhost reaches the pod's own servers. Connections
to the host endpoints in `LOCALCLUSTER_HOST_ENDPOINTS` ("host:port host:port", the API server and the
service proxy) are left alone. Every outgoing loopback connection leaves from the pod address, as a
pod's packets carry its IP: that is how the service proxy knows the caller (and so the namespace in
which short Service names resolve). IPv6 sockets are not mapped. Without `LOCALCLUSTER_POD_IP` it does
nothing, so it is harmless outside a pod.

A pod has no filesystem of its own either: its volumes are directories its mount paths are rewritten to
(see `_volumes`). The official Python client reads the ServiceAccount token and CA from fixed paths
(`/var/run/secrets/kubernetes.io/serviceaccount/token`), so when the pod has that mount the shim points
the client's in-cluster configuration at it (`LOCALCLUSTER_POD_ROOT` holds the pod's mount links),
and `kubernetes.config.load_incluster_config()` works in a pod as in a container.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_POD_IP = os.environ.get("LOCALCLUSTER_POD_IP", "")
_POD_ROOT = os.environ.get("LOCALCLUSTER_POD_ROOT", "")
_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_IN_CLUSTER_MODULE = "kubernetes.config.incluster_config"
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


class InClusterPaths:
    """A meta path finder that, once the client's in-cluster module is loaded, repoints its file constants."""

    def __init__(self, service_account_dir: str) -> None:
        self.service_account_dir = service_account_dir

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _IN_CLUSTER_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module = self._repointing(spec.loader.exec_module)
                return spec
        return None

    def _repointing(self, load: Any) -> Any:
        directory = self.service_account_dir

        def exec_module(module: Any) -> None:
            load(module)
            module.SERVICE_TOKEN_FILENAME = os.path.join(directory, "token")
            module.SERVICE_CERT_FILENAME = os.path.join(directory, "ca.crt")

        return exec_module


if _POD_IP:
    _install()
if _POD_ROOT and os.path.isdir(_POD_ROOT + _SERVICE_ACCOUNT_DIR):
    sys.meta_path.insert(0, InClusterPaths(_POD_ROOT + _SERVICE_ACCOUNT_DIR))
