"""Start bookstore services as real processes on free loopback ports, and always stop them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import bookstore

REPO_ROOT = Path(bookstore.__file__).resolve().parent.parent
START_DEADLINE_SECONDS = 30.0  # generous: the test machine's two cores are shared
STOP_DEADLINE_SECONDS = 15.0
_LISTENING = re.compile(rb"listening on (http://[\d.]+:\d+)")
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass
class ServiceProcess:
    """A running bookstore service and where to reach it."""

    service: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, then wait for the process to end; returns its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_DEADLINE_SECONDS)


def poll(check: Callable[[], object], what: str, deadline_seconds: float = START_DEADLINE_SECONDS) -> object:
    """Call ``check`` until it returns something truthy, backing off, or fail saying what was awaited."""
    deadline = time.monotonic() + deadline_seconds
    pause = 0.02
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {deadline_seconds:.0f} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def child_environment(**overrides: str) -> dict[str, str]:
    """This environment without proxies (the services talk on loopback directly), plus ``overrides``."""
    env = {name: value for name, value in os.environ.items() if name.lower() not in _PROXY_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


def run_module(service: str) -> list[str]:
    module = "bookstore.monolith" if service == "monolith" else f"bookstore.services.{service}"
    return [sys.executable, "-m", module]


@pytest.fixture
def bookstore_command() -> Callable[..., tuple[list[str], dict[str, str]]]:
    """``argv, env = bookstore_command("stock", PORT="0")``: how to run a service, for tests that run it themselves."""
    return lambda service, **env: (run_module(service), child_environment(**env))


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """``start_service("stock", BOOKSTORE_VERSION="v2")``: a service on a free port, Ready; stopped at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(service: str, **env: str) -> ServiceProcess:
        log = tmp_path / f"{service}-{len(processes)}.log"
        environment = child_environment(
            PORT="0",
            BIND="127.0.0.1",
            BOOKSTORE_DATA_DIR=str(tmp_path / "data"),
            BOOKSTORE_VERSION="v-it",
            **env,
        )
        with log.open("wb") as output:
            process = subprocess.Popen(
                run_module(service), stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=tmp_path
            )
        processes.append(process)

        def listening_url() -> str | None:
            match = _LISTENING.search(log.read_bytes())
            if match is None and process.poll() is not None:
                pytest.fail(f"{service} exited with {process.returncode}:\n{log.read_text()}")
            return match.group(1).decode() if match else None

        url = str(poll(listening_url, f"{service} to listen"))

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200
            except httpx.TransportError:
                return False

        poll(healthy, f"{service} to answer /health")
        return ServiceProcess(service, process, url, log)

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
