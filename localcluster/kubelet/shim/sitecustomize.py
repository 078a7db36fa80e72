"""localcluster's pod network shim, loaded by every Python process of a pod (it is on PYTHONPATH).

A pod has no network namespace of its own, so this maps what a container takes for granted onto the
pod's loopback address (`LOCALCLUSTER_POD_IP`): binding 0.0.0.0, '', localhost or 127.0.0.1 binds
the pod address, and connecting to 127.0.0.1 or localhost reaches the pod's own servers. Connections
to the host endpoints in `LOCALCLUSTER_HOST_ENDPOINTS` ("host:port host:port", the API server and the
service proxy) are left alone. Every outgoing loopback connection leaves from the pod address, as a
pod's packets carry its IP: that is how the service proxy knows the caller (and so the namespace in
which short Service names resolve). IPv6 sockets are not mapped. Without `LOCALCLUSTER_POD_IP` it does
nothing, so it is harmless outside a pod.

It also plays cluster DNS and kube-proxy's kernel rules, following the rules file localcluster keeps
(`LOCALCLUSTER_SERVICE_RULES`, see `localcluster.network.kubeproxy`): a Service's name resolves to its
cluster IP, and a connection to a cluster IP goes straight to one of the Service's Ready endpoints,
chosen at random, with no process in between, as on a real node. Where the rules give no direct
route (a Service behind sidecars or Knative, no Ready endpoint, a name that is no Service), the
connection goes to the service proxy instead, which routes by the request's Host as it always has.
So HTTP clients no longer need `HTTP_PROXY`, and the shim takes it out of this process's environment;
a pod with an Istio sidecar (Envoy intercepts all its traffic), or one the rules do not list yet,
keeps it and sends everything through the proxy as before. Non-Python programs in a pod always use
`HTTP_PROXY`.

A pod has no filesystem of its own either: its volumes are directories its mount paths are rewritten to
(see `_volumes`). The official Python client reads the ServiceAccount token and CA from fixed paths
(`/var/run/secrets/kubernetes.io/serviceaccount/token`), so when the pod has that mount the shim points
the client's in-cluster configuration at it (`LOCALCLUSTER_POD_ROOT` holds the pod's mount links),
and `kubernetes.config.load_incluster_config()` works in a pod as in a container.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import random
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
_RULES_PATH = os.environ.get("LOCALCLUSTER_SERVICE_RULES", "")
_POD = f"{os.environ.get('LOCALCLUSTER_POD_NAMESPACE', '')}/{os.environ.get('HOSTNAME', '')}"
_RULES_FORMAT = 1
_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


class ServiceRules:
    """The rules file as last read; read again whenever it was replaced (one stat per lookup)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self.data: dict[str, Any] = {}

    def current(self) -> dict[str, Any]:
        try:
            status = os.stat(self.path)
        except OSError:
            return self.data
        stamp = (status.st_ino, status.st_mtime_ns)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8") as file:
                    data = json.load(file)
            except (OSError, ValueError):
                return self.data
            self._stamp = stamp
            if isinstance(data, dict) and data.get("format") == _RULES_FORMAT:
                self.data = data
        return self.data

    @property
    def proxy(self) -> tuple[str, int]:
        host, port = self.current()["proxy"]
        return host, port

    def follows_rules(self, pod: str) -> bool:
        """The pod is known and has no sidecar: its connections may go direct."""
        return self.current().get("pods", {}).get(pod) is False

    def cluster_ip(self, name: str, namespace: str) -> str | None:
        """Cluster DNS: the cluster IP of the Service `name` names (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`)."""
        labels = name.lower().rstrip(".").split(".")
        if labels[-2:] == ["cluster", "local"]:
            labels = labels[:-2] if labels[-3:-2] == ["svc"] else []
        if len(labels) == 3 and labels[2] == "svc":
            labels = labels[:2]
        if len(labels) not in (1, 2):
            return None
        service = f"{labels[1] if len(labels) == 2 else namespace}/{labels[0]}"
        ip: str | None = self.current().get("services", {}).get(service)
        return ip

    def endpoint(self, cluster_ip: str, port: int) -> tuple[str, int] | None:
        """kube-proxy's choice for a new connection to `cluster_ip:port`: a Ready endpoint at random, if direct."""
        ready = self.current().get("routes", {}).get(cluster_ip, {}).get(str(port))
        if not ready:
            return None
        host, target_port = random.choice(ready)
        return host, target_port


def _mapped(sock: socket.socket, address: Any, aliases: frozenset[str], *, connecting: bool) -> Any:
    if sock.family != socket.AF_INET or not isinstance(address, tuple) or len(address) != 2:
        return address
    host, port = address
    if host not in aliases or (connecting and f"{host}:{port}" in _HOST_ENDPOINTS):
        return address
    return (_POD_IP, port)


def _is_name(host: str, own: frozenset[str]) -> bool:
    """A host that DNS would resolve: not an address, not one of this machine's own names (`own`)."""
    if host in own or host.endswith(".localhost"):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _install_service_rules(rules: ServiceRules, namespace: str) -> None:
    """Cluster DNS and kube-proxy's rules in this process (see the module's docstring)."""
    original_getaddrinfo = socket.getaddrinfo
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    own_names = frozenset({"", "localhost", socket.gethostname()})

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode("idna") if isinstance(host, bytes) else host
        if not isinstance(name, str) or not _is_name(name, own_names) or family not in (0, socket.AF_INET):
            return original_getaddrinfo(host, port, family, type, proto, flags)
        cluster_ip = rules.cluster_ip(name, namespace)
        # A name that is no Service goes to the proxy, which routes it by Host (or says why it cannot).
        address = (cluster_ip, _port_number(port)) if cluster_ip else rules.proxy
        return [(socket.AF_INET, type or socket.SOCK_STREAM, proto or socket.IPPROTO_TCP, "", address)]

    def routed(sock: socket.socket, address: Any) -> Any:
        if sock.family != socket.AF_INET or not isinstance(address, tuple) or len(address) != 2:
            return address
        host, port = address
        if host not in rules.current().get("services", {}).values():
            return address
        return rules.endpoint(host, port) or rules.proxy

    def connect(self: socket.socket, address: Any) -> None:
        original_connect(self, routed(self, address))

    def connect_ex(self: socket.socket, address: Any) -> int:
        return original_connect_ex(self, routed(self, address))

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    for variable in _PROXY_VARIABLES:
        os.environ.pop(variable, None)


def _port_number(port: Any) -> int:
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str) and not port.isdigit():
        return socket.getservbyname(port, "tcp")
    return int(port or 0)


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
    if _RULES_PATH and (_rules := ServiceRules(_RULES_PATH)).follows_rules(_POD):
        _install_service_rules(_rules, _POD.partition("/")[0])
if _POD_ROOT and os.path.isdir(_POD_ROOT + _SERVICE_ACCOUNT_DIR):
    sys.meta_path.insert(0, InClusterPaths(_POD_ROOT + _SERVICE_ACCOUNT_DIR))
