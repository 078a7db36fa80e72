"""The course tier: every lab's notebook, checks and grading against a real localcluster.

Each test gets a fresh localcluster in a temporary LAB_HOME, and an environment pointing at it
as a plain `lab up` leaves it: LAB_HOME set, KUBECONFIG unset. In-process connections and the Jupyter
kernels that papermill and nbgrader start (they inherit this process's environment) all talk to that
cluster and nothing of the user's: `labkit.connect()` and `labkit.kubectl()` find it by LAB_HOME.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from checkers import Context
from tests.integration.conftest import LocalCluster, start_cluster, stop_cluster


@contextmanager
def cluster_for_the_labs(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    """A fresh localcluster in `home`, with this process's environment (and its kernels') pointing at it."""
    running = start_cluster(home)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("LAB_HOME", str(running.home))
    monkeypatch.delenv("LAB_NAMESPACE", raising=False)
    monkeypatch.delenv("LAB_CONTEXT", raising=False)
    try:
        yield running
    finally:
        stop_cluster(running)


@pytest.fixture
def lab_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    with cluster_for_the_labs(tmp_path / "lab-home", monkeypatch) as running:
        yield running


@pytest.fixture
def connection(lab_cluster: LocalCluster) -> Iterator[Context]:
    """`labkit.connect()` to the test's cluster, as a notebook's first cell makes it."""
    from labkit.connection import connect

    with connect() as connected:
        yield connected
