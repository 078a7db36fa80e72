"""A real localcluster per test module: `lab up` in a temporary LAB_HOME on a free port, then `lab down`.

Nothing here touches the user's own state, and the teardown asserts no process was left behind.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import kubernetes
import psutil
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).with_name("kubectl")


@dataclass
class LocalCluster:
    home: Path
    env: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    def lab(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the `lab` CLI against this cluster."""
        return subprocess.run(
            [sys.executable, "-m", "localcluster.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def http(self, *, authenticated: bool = True) -> httpx.Client:
        """A plain HTTPS client for the API, for requests the typed client cannot make."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        headers = {"Authorization": f"Bearer {config['users'][0]['user']['token']}"} if authenticated else {}
        return httpx.Client(
            base_url=config["clusters"][0]["cluster"]["server"],
            verify=ssl.create_default_context(cafile=str(self.home / "pki" / "ca.crt")),
            headers=headers,
            trust_env=False,
            timeout=30,
        )

    def server_processes(self) -> list[psutil.Process]:
        """Processes started for this LAB_HOME that are still alive."""
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            try:
                if process.environ().get("LAB_HOME") == str(self.home):
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return [p for p in found if p.pid != os.getpid()]


def start_cluster(home: Path, **settings: str) -> LocalCluster:
    """`lab up` in `home`; keyword arguments become environment settings (LOCALCLUSTER_WATCH_HISTORY=...)."""
    env = {**os.environ, "LAB_HOME": str(home), **settings}
    env.pop("KUBECONFIG", None)
    cluster = LocalCluster(home, env)
    cluster.lab("up", "--timeout", "60")
    return cluster


def stop_cluster(cluster: LocalCluster) -> None:
    cluster.lab("down")
    left = cluster.server_processes()
    assert not left, f"processes left behind: {[p.cmdline() for p in left]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One localcluster shared by the tests of a module."""
    running = start_cluster(tmp_path_factory.mktemp("lab-home"))
    try:
        yield running
    finally:
        stop_cluster(running)


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A localcluster of the test's own, for tests that restart or break it."""
    running = start_cluster(tmp_path / "lab-home")
    try:
        yield running
    finally:
        stop_cluster(running)
