"""A real localcluster for tests, benchmarks and notebook CI, as a context manager.

    with LocalClusterRunner(tmp_path / "home") as cluster:
        cluster.kubectl("get", "pods")

It runs `lab up` in its own `LAB_HOME` (on a free port) and `lab down` on exit, so it never touches
the user's own state.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import httpx
import psutil
import yaml

KUBECTL = Path(sys.executable).with_name("kubectl")


class LocalClusterRunner:
    """Start localcluster in `home` on entry and stop it, with every process it started, on exit."""

    def __init__(self, home: Path, **settings: str) -> None:
        self.home = Path(home)
        self.env = {**os.environ, "LAB_HOME": str(self.home), **settings}
        self.env.pop("KUBECONFIG", None)

    def __enter__(self) -> LocalClusterRunner:
        self.lab("up", "--timeout", "60")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.lab("down")

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    def lab(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess[str]:
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

    def api_client(self):  # -> kubernetes.client.ApiClient (imported lazily: the client is slow to import)
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl_streaming(self, *args: str) -> subprocess.Popen[str]:
        """A kubectl that runs on (`logs -f`, `get -w`, `port-forward`): its output is read as it comes, and the
        caller ends it (`kill()`, or a `with` block)."""
        return subprocess.Popen(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

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

    def server_pid(self) -> int:
        return int(json.loads((self.home / "localcluster.json").read_text())["pid"])

    def processes(self) -> list[psutil.Process]:
        """Live processes started for this LAB_HOME (the server and its pods)."""
        found = []
        for process in psutil.process_iter(["pid"]):
            try:
                if process.pid != os.getpid() and process.environ().get("LAB_HOME") == str(self.home):
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found
