"""The pod network shim's address mapping (the module is loaded from its file, without installing it)."""

from __future__ import annotations

import importlib
import importlib.util
import socket
import sys
from collections.abc import Iterator
from types import ModuleType

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
