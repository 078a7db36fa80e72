"""labkit.connect(): which cluster it picks and how it says there is none (no cluster needs to run)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient

from labkit._default import resolve
from labkit.connection import ClusterUnavailable, Connection, connect


@pytest.fixture
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty LAB_HOME and an environment without kubeconfig, context or namespace settings."""
    home = tmp_path / "lab-home"
    home.mkdir()
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))  # so ~/.kube/config is the test's (absent) one
    for name in ("KUBECONFIG", "LAB_CONTEXT", "LAB_NAMESPACE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    return home


def write_kubeconfig(path: Path, contexts: dict[str, str], current: str) -> Path:
    """A kubeconfig with one cluster per context, each at its own (unused) loopback URL."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}} for name, server in contexts.items()],
        "users": [{"name": "user", "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "user"}} for name in contexts],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_localcluster_not_running_says_to_start_it(lab_home: Path) -> None:
    with pytest.raises(ClusterUnavailable, match=r"localcluster is not running: start it with `lab up`"):
        connect()


def test_a_state_file_left_by_a_dead_server_means_not_running(lab_home: Path) -> None:
    state = {"pid": os.getpid(), "host": "127.0.0.1", "port": 1, "home": str(lab_home), "started": time.time()}
    (lab_home / "localcluster.json").write_text(json.dumps(state))
    with pytest.raises(ClusterUnavailable, match="not running"):
        connect()


def test_corrupt_state_file_is_a_clear_error(lab_home: Path) -> None:
    (lab_home / "localcluster.json").write_text("{not json")
    with pytest.raises(ClusterUnavailable, match="corrupt"):
        connect()


def test_unavailable_is_a_connection_error_so_checks_blame_the_environment(lab_home: Path) -> None:
    with pytest.raises(ConnectionError):
        connect()


def test_kubeconfig_context_is_picked_by_argument_or_lab_context(
    lab_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = {"first": "https://127.0.0.1:6441", "second": "https://127.0.0.1:6442"}
    kubeconfig = write_kubeconfig(tmp_path / "config", contexts, current="first")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with connect() as current, connect(context="second") as chosen:
        assert current.core.api_client.configuration.host == contexts["first"]
        assert chosen.core.api_client.configuration.host == contexts["second"]
        assert isinstance(chosen.core.api_client, ApiClient)
        assert chosen.source == "kubeconfig"
    monkeypatch.setenv("LAB_CONTEXT", "second")
    with connect() as from_environment:
        assert from_environment.core.api_client.configuration.host == contexts["second"]
        assert from_environment.apps.api_client is from_environment.core.api_client


def test_context_without_kubeconfig_is_looked_up_in_the_users_kubeconfig(lab_home: Path, tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    write_kubeconfig(tmp_path / ".kube" / "config", {"kind": "https://127.0.0.1:6443"}, current="kind")
    with connect(context="kind") as connection:
        assert connection.core.api_client.configuration.host == "https://127.0.0.1:6443"


def test_unknown_context_is_a_clear_error(lab_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "config", {"only": "https://127.0.0.1:6441"}, current="only")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(ClusterUnavailable, match="cannot use context 'nope'"):
        connect(context="nope")


def test_namespace_comes_from_lab_namespace_unless_given(
    lab_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "config", {"only": "https://127.0.0.1:6441"}, current="only")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with connect() as default:
        assert default.namespace == "bookstore"
    monkeypatch.setenv("LAB_NAMESPACE", "attendee-7")
    with connect() as configured, connect(namespace="other") as explicit:
        assert (configured.namespace, explicit.namespace) == ("attendee-7", "other")


def test_the_last_connection_is_the_helpers_default_until_it_is_closed(
    lab_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "config", {"only": "https://127.0.0.1:6441"}, current="only")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with connect() as first, connect(namespace="other") as second:
        assert resolve(None) is second
        assert resolve(first) is first
        second.close()
        fresh = resolve(None)
        assert isinstance(fresh, Connection) and fresh not in (first, second)
        assert fresh.namespace == "bookstore"
        fresh.close()
