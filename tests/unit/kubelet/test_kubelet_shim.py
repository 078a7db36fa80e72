"""The pod network shim's address mapping (the module is loaded from its file, without installing it)."""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from localcluster.kubelet import SHIM_DIR

POD_IP = "127.244.0.9"


@pytest.fixture
def shim(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("pod_sitecustomize", SHIM_DIR / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.delenv("LOCALCLUSTER_POD_IP", raising=False)
    spec.loader.exec_module(module)  # without LOCALCLUSTER_POD_IP it installs nothing
    monkeypatch.setattr(module, "_POD_IP", POD_IP)
    monkeypatch.setattr(module, "_HOST_ENDPOINTS", frozenset({"127.0.0.1:6443"}))
    return module


@pytest.fixture
def tcp() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        yield sock


def test_not_installed_outside_a_pod(shim: ModuleType) -> None:
    assert socket.socket.bind.__qualname__ != "_install.<locals>.bind"


@pytest.mark.parametrize("host", ["0.0.0.0", "", "localhost", "127.0.0.1"])
def test_wildcard_and_loopback_binds_go_to_the_pod_address(shim: ModuleType, tcp: socket.socket, host: str) -> None:
    assert shim._mapped(tcp, (host, 8080), shim._BIND_ALIASES, connecting=False) == (POD_IP, 8080)


def test_a_mapped_bind_really_listens_on_the_pod_address(shim: ModuleType, tcp: socket.socket) -> None:
    tcp.bind(shim._mapped(tcp, ("0.0.0.0", 0), shim._BIND_ALIASES, connecting=False))
    assert tcp.getsockname()[0] == POD_IP


def test_connects_to_loopback_reach_the_pod_except_host_endpoints(shim: ModuleType, tcp: socket.socket) -> None:
    aliases = shim._CONNECT_ALIASES
    assert shim._mapped(tcp, ("localhost", 8080), aliases, connecting=True) == (POD_IP, 8080)
    assert shim._mapped(tcp, ("127.0.0.1", 6443), aliases, connecting=True) == ("127.0.0.1", 6443)
    assert shim._mapped(tcp, ("127.244.0.3", 8080), aliases, connecting=True) == ("127.244.0.3", 8080)


def test_ipv6_and_unix_sockets_are_left_alone(shim: ModuleType) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as six:
        assert shim._mapped(six, ("::", 8080, 0, 0), shim._BIND_ALIASES, connecting=False) == ("::", 8080, 0, 0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert shim._mapped(unix, "/tmp/x.sock", shim._BIND_ALIASES, connecting=False) == "/tmp/x.sock"


def test_the_clients_in_cluster_paths_point_at_the_pods_token_mount(
    shim: ModuleType, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount = tmp_path / "root" / "var/run/secrets/kubernetes.io/serviceaccount"
    mount.mkdir(parents=True)
    monkeypatch.delitem(sys.modules, "kubernetes.config.incluster_config", raising=False)
    monkeypatch.setattr(sys, "meta_path", [shim.InClusterPaths(str(mount)), *sys.meta_path])
    module = importlib.import_module("kubernetes.config.incluster_config")
    paths = (module.SERVICE_TOKEN_FILENAME, module.SERVICE_CERT_FILENAME)
    assert paths == (str(mount / "token"), str(mount / "ca.crt"))
    monkeypatch.delitem(sys.modules, "kubernetes.config.incluster_config")


def write_rules(path: Path, *, routes: dict[str, dict[str, list[list[Any]]]], proxy: tuple[str, int]) -> None:
    rules = {
        "format": 1,
        "proxy": list(proxy),
        "pods": {"shop/caller": False, "shop/meshed": True},
        "services": {"shop/web": "127.96.0.10", "shop/empty": "127.96.0.11"},
        "routes": routes,
    }
    path.write_text(json.dumps(rules))


@pytest.fixture
def rules(shim: ModuleType, tmp_path: Path) -> Any:
    path = tmp_path / "service-rules.json"
    write_rules(path, routes={"127.96.0.10": {"80": [["127.244.0.20", 8080]]}}, proxy=("127.0.0.1", 3128))
    return shim.ServiceRules(str(path))


@pytest.mark.parametrize("name", ["web", "web.shop", "web.shop.svc", "web.shop.svc.cluster.local", "WEB.shop."])
def test_service_names_resolve_to_cluster_ips_as_cluster_dns(rules: Any, name: str) -> None:
    assert rules.cluster_ip(name, "shop") == "127.96.0.10"


@pytest.mark.parametrize("name", ["web.other", "web.shop.pod", "a.b.c.d", "web.shop.cluster.local"])
def test_other_names_are_no_service(rules: Any, name: str) -> None:
    assert rules.cluster_ip(name, "shop") is None


def test_a_connection_goes_to_a_ready_endpoint_only_where_the_rules_give_a_route(rules: Any) -> None:
    assert rules.endpoint("127.96.0.10", 80) == ("127.244.0.20", 8080)
    assert rules.endpoint("127.96.0.10", 81) is None
    assert rules.endpoint("127.96.0.11", 80) is None, "no route: the proxy answers"
    assert rules.proxy == ("127.0.0.1", 3128)


def test_only_known_pods_without_sidecar_follow_the_rules(rules: Any) -> None:
    assert rules.follows_rules("shop/caller")
    assert not rules.follows_rules("shop/meshed")
    assert not rules.follows_rules("shop/not-listed-yet")


def test_a_replaced_file_is_read_again_and_a_broken_one_ignored(rules: Any) -> None:
    path = Path(rules.path)
    replacement = path.with_name("next.json")
    write_rules(replacement, routes={}, proxy=("127.0.0.1", 3129))
    replacement.replace(path)
    assert rules.endpoint("127.96.0.10", 80) is None and rules.proxy == ("127.0.0.1", 3129)
    replacement.write_text("{not json")
    replacement.replace(path)
    assert rules.proxy == ("127.0.0.1", 3129), "the last good rules stand"


def test_an_installed_shim_takes_a_plain_pods_http_straight_to_the_endpoint(tmp_path: Path) -> None:
    """A real process with the shim: urllib resolves `web`, connects to its cluster IP, lands on the endpoint."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.client_address[0]} {self.path}")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.244.0.20", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "service-rules.json"
        routes = {"127.96.0.10": {"80": [["127.244.0.20", server.server_address[1]]]}}
        write_rules(path, routes=routes, proxy=("127.0.0.1", 9))
        script = (
            "import os, urllib.request; print(os.environ.get('HTTP_PROXY'));"
            " print(urllib.request.urlopen('http://web/x', timeout=10).read().decode())"
        )
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(SHIM_DIR),
            "HOSTNAME": "caller",
            "LOCALCLUSTER_POD_IP": "127.244.0.21",
            "LOCALCLUSTER_POD_NAMESPACE": "shop",
            "LOCALCLUSTER_SERVICE_RULES": str(path),
            "HTTP_PROXY": "http://127.0.0.1:9",
        }
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "ok"], "no HTTP_PROXY left in the process; the endpoint answered"
    assert seen == ["127.244.0.21 /x"], "from the pod's own address, with no proxy in between"
