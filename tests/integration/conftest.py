"""A real localcluster per test module: `lab up` in a temporary LAB_HOME on a free port, then `lab down`.

Nothing here touches the user's own state, and the teardown asserts no process was left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.testing import KUBECTL, LocalClusterRunner

#: The name the tests use for a running cluster handle.
LocalCluster = LocalClusterRunner

__all__ = ["KUBECTL", "LocalCluster", "start_cluster", "stop_cluster"]


def start_cluster(home: Path, **settings: str) -> LocalCluster:
    """`lab up` in `home`; keyword arguments become environment settings (LOCALCLUSTER_WATCH_HISTORY=...)."""
    return LocalClusterRunner(home, **settings).__enter__()


def stop_cluster(cluster: LocalCluster) -> None:
    cluster.lab("down")
    left = cluster.processes()
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
