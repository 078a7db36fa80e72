"""JupyterLab on labs/ and localcluster, as `make run` starts them, driven by Debian's Chromium.

Everything lives in temporary directories: a copy of labs/, Jupyter's config, data, runtime and
settings directories, HOME, and the browser profile. JupyterLab binds a port the OS picks on
127.0.0.1 and asks for a random token. Chromium is Debian's (tools/install-browser.sh installs it):
`playwright install` downloads browsers, which cannot work offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from labkit import release, wait_for
from tests.integration.conftest import LocalCluster
from tests.notebooks.conftest import cluster_for_the_labs
from tests.notebooks.course import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ARTIFACTS / "browser"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Seconds JupyterLab may take to start, and to stop with its kernels.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
#: JupyterLab user settings: no news pop-up asking to fetch from the internet.
SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab: where it answers, its token, and the directory it serves."""

    url: str
    token: str
    root: Path

    def login_url(self, path: str = "lab") -> str:
        return f"{self.url}{path}?token={self.token}"


def _jupyter_environment(base: Path, cluster: LocalCluster) -> dict[str, str]:
    """`make run`'s environment (KUBECONFIG, the venv first on PATH), with every Jupyter directory temporary."""
    directories = {
        "HOME": "home",
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    env = {**cluster.env, **{name: str(base / sub) for name, sub in directories.items()}}
    for sub in directories.values():
        (base / sub).mkdir(parents=True)
    for name, values in SETTINGS.items():
        path = base / "settings" / name
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(values))
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _server_info(runtime: Path, server: subprocess.Popen[bytes], log: Path) -> dict[str, object] | None:
    """What JupyterLab wrote about itself once it listens (its port is the OS's choice)."""
    if server.poll() is not None:
        raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
    found = sorted(runtime.glob("jpserver-*.json"))
    return json.loads(found[0].read_text()) if found else None


def _answers(lab: JupyterLab) -> bool:
    try:
        return httpx.get(f"{lab.url}api/status", params={"token": lab.token}, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def _stop(server: subprocess.Popen[bytes], lab: JupyterLab | None) -> None:
    """Shut JupyterLab down through its API (it stops its kernels), then make sure nothing is left."""
    try:
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    if lab is not None and server.poll() is None:
        # A server already going away may not answer: the wait below decides.
        with contextlib.suppress(httpx.TransportError):
            httpx.post(f"{lab.url}api/shutdown", params={"token": lab.token}, trust_env=False)
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    # Kernels run in sessions of their own, so a server that died hard can leave them behind.
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(family, timeout=STOP_TIMEOUT)


@pytest.fixture
def lab_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    with cluster_for_the_labs(tmp_path / "lab-home", monkeypatch) as running:
        yield running


@pytest.fixture
def jupyterlab(lab_cluster: LocalCluster, tmp_path: Path) -> Iterator[JupyterLab]:
    """`make run`'s JupyterLab (`lab jupyter`) on a copy of labs/, with localcluster up.

    Only what a test needs is added: no browser, a port and a token of its own, no update check.
    """
    root = tmp_path / "labs"
    shutil.copytree(release.LABS, root)
    env = _jupyter_environment(tmp_path / "jupyter", lab_cluster)
    token = secrets.token_hex(24)
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "localcluster.cli",
        "jupyter",
        "--root",
        str(root),
        "--no-browser",
        "--ServerApp.port=0",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    with log.open("wb") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    lab: JupyterLab | None = None
    try:
        runtime = Path(env["JUPYTER_RUNTIME_DIR"])
        info = wait_for(lambda: _server_info(runtime, server, log), what="JupyterLab to listen", timeout=START_TIMEOUT)
        assert info is not None  # wait_for returns only what is truthy
        lab = JupyterLab(url=str(info["url"]), token=token, root=root)
        wait_for(lambda: _answers(lab), what="JupyterLab to answer", timeout=START_TIMEOUT)
        yield lab
    finally:
        _stop(server, lab)


@pytest.fixture
def browser_page(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A page in headless Debian Chromium with a temporary profile (a playwright Page).

    Its last picture is kept as test-artifacts/browser/<test>-last.png, to see where a failure stopped.
    """
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run tools/install-browser.sh (as root) first", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = context.pages[0] if context.pages else context.new_page()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            yield page
        finally:
            page.screenshot(path=SCREENSHOTS / f"{request.node.name}-last.png")
            context.close()
