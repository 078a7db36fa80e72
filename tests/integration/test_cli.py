"""The `lab` CLI as a user runs it: up (twice), status, kubeconfig, down, clear errors."""

from __future__ import annotations

import socket
import subprocess
import sys

import yaml

from tests.integration.conftest import LocalCluster, running_cluster

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\ndata:\n  a: '1'\n"


def test_up_is_idempotent_and_prints_connection_details(fresh_cluster: LocalCluster) -> None:
    again = fresh_cluster.lab("up")
    assert "already running" in again.stdout
    assert "context:    bookstore-local" in again.stdout
    assert "namespace:  bookstore" in again.stdout
    config = yaml.safe_load(fresh_cluster.kubeconfig.read_text())
    assert config["current-context"] == "bookstore-local"
    assert config["contexts"][0]["context"]["namespace"] == "bookstore"
    token = config["users"][0]["user"]["token"]
    assert len(token) >= 32
    server = config["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:")


def test_kubeconfig_prints_the_path_last(fresh_cluster: LocalCluster) -> None:
    result = fresh_cluster.lab("kubeconfig")
    assert result.stdout.strip().splitlines()[-1] == str(fresh_cluster.kubeconfig)


def test_status_shows_the_api_and_exits_1_when_stopped(fresh_cluster: LocalCluster) -> None:
    running = fresh_cluster.lab("status")
    assert "ready" in running.stdout and "https://127.0.0.1:" in running.stdout
    fresh_cluster.lab("down")
    stopped = fresh_cluster.lab("status", check=False)
    assert stopped.returncode == 1
    assert "stopped" in stopped.stdout
    assert "not running" in fresh_cluster.lab("down").stdout


def test_port_in_use_is_a_one_line_error(fresh_cluster: LocalCluster, tmp_path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        other = fresh_cluster.env | {"LAB_HOME": str(tmp_path / "other")}
        result = subprocess.run(
            [sys.executable, "-m", "localcluster.cli", "up", "--port", str(port)],
            env=other,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_second_cluster_on_a_taken_port_names_the_other_lab_home(fresh_cluster: LocalCluster, tmp_path) -> None:
    config = yaml.safe_load(fresh_cluster.kubeconfig.read_text())
    port = config["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1]
    other = LocalCluster(tmp_path / "other")
    result = other.lab("up", "--port", port, check=False)
    assert result.returncode == 1
    assert f"another LAB_HOME ({fresh_cluster.home})" in result.stderr


def test_unusable_state_directory_is_a_clear_error(tmp_path) -> None:
    # A path under a regular file can never be a directory, even for root (who may write anywhere).
    (tmp_path / "file").write_text("")
    result = LocalCluster(tmp_path / "file" / "home").lab("up", check=False)
    assert result.returncode == 1
    assert "is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_restart_keeps_objects_uid_and_port(tmp_path) -> None:
    with running_cluster(tmp_path / "home") as cluster:
        cluster.kubectl("apply", "-f", "-", input=CONFIGMAP)
        before = yaml.safe_load(cluster.kubectl("get", "configmap", "kept", "-o", "yaml").stdout)
        server_before = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        cluster.lab("down")
        cluster.lab("up")
        after = yaml.safe_load(cluster.kubectl("get", "configmap", "kept", "-o", "yaml").stdout)
        server_after = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["data"] == {"a": "1"}
    assert server_after == server_before
