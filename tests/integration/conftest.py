"""A real localcluster per test module: `lab up` in a temporary LAB_HOME on a free port, then `lab down`.

Nothing here touches the user's own state, and the teardown asserts no process was left behind.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from localcluster.testing import KUBECTL, LocalClusterRunner

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, CoreV1Api

    from labkit.connection import Connection
    from tests.integration.lab_support import Fixer

T = TypeVar("T")

#: The name the tests use for a running cluster handle.
LocalCluster = LocalClusterRunner

__all__ = [
    "KUBECTL",
    "LocalCluster",
    "eventually",
    "free_port",
    "poll_until",
    "running_cluster",
    "start_cluster",
    "stop_cluster",
]


def eventually(predicate: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    result = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.05),
        retry=retry_if_result(lambda value: not value),
        retry_error_callback=lambda state: None,
    )(predicate)
    assert result, f"timed out after {timeout:g} s waiting for {what}"
    return result


def poll_until(probe: Callable[[], T], until: Callable[[T], bool], what: str, timeout: float = 30.0) -> T:
    """Poll `probe` with back-off until `until(value)` holds; fail with `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen: {value!r}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def free_port(other_than: int) -> int:
    """A loopback port nothing listens on now, other than `other_than` (for a restart that must move the API)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != other_than:
            return port


def start_cluster(home: Path, **settings: str) -> LocalCluster:
    """`lab up` in `home`; keyword arguments become environment settings (LOCALCLUSTER_WATCH_HISTORY=...)."""
    return LocalClusterRunner(home, **settings).__enter__()


def stop_cluster(cluster: LocalCluster) -> None:
    cluster.lab("down")
    left = cluster.processes()
    assert not left, f"processes left behind: {[p.cmdline() for p in left]}"


@contextmanager
def running_cluster(home: Path, **settings: str) -> Iterator[LocalCluster]:
    """A localcluster in `home` for the `with` block (settings as for `start_cluster`), then `lab down`, checked."""
    running = start_cluster(home, **settings)
    try:
        yield running
    finally:
        stop_cluster(running)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One localcluster shared by the tests of a module."""
    with running_cluster(tmp_path_factory.mktemp("lab-home")) as running:
        yield running


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A localcluster of the test's own, for tests that restart or break it."""
    with running_cluster(tmp_path / "lab-home") as running:
        yield running


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[ApiClient]:
    """The official client, configured from the module's cluster's kubeconfig as a user's would be."""
    with cluster.api_client() as client:
        yield client


@pytest.fixture(scope="module")
def core(api: ApiClient) -> CoreV1Api:
    from kubernetes.client import CoreV1Api  # the client is slow to import: only modules that use it pay

    return CoreV1Api(api)


@pytest.fixture
def conn(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    """labkit.connect() with the environment a notebook beside the module's cluster has."""
    import labkit

    monkeypatch.setenv("LAB_HOME", str(cluster.home))
    for name in ("KUBECONFIG", "LAB_CONTEXT", "LAB_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    with labkit.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def ctx(cluster: LocalCluster) -> Iterator[Connection]:
    """What `labkit.connect()` gives a notebook beside the module's cluster, with the lab namespace made.

    Modules that need the lab further along (a step solved first) define their own `ctx`.
    """
    from tests.integration.lab_support import connection_to  # labkit and the client: only modules that use it pay

    with connection_to(cluster) as connection:
        yield connection


@pytest.fixture
def fix(cluster: LocalCluster, ctx: Connection, tmp_path: Path) -> Fixer:
    """Follows a FAILED verdict's hints until its check passes: `fix("01.2", failed)`; kubectl runs in tmp_path."""
    from tests.integration.lab_support import fixer

    return fixer(cluster, ctx, tmp_path)
