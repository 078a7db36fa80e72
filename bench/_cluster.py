"""The localcluster the bookstore benchmarks run on: a temporary LAB_HOME, the bookstore namespace, a connection."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkers import Context
    from localcluster.testing import LocalClusterRunner


@contextmanager
def bookstore_cluster(prefix: str) -> Iterator[tuple[LocalClusterRunner, Context]]:
    """A localcluster started in a new temporary LAB_HOME (``prefix``), with the ``bookstore`` namespace.

    The environment points KUBECONFIG and LAB_HOME at it, as ``lab up`` leaves them for a notebook;
    the cluster stops, and its home is removed, when the block ends.
    """
    from labkit.connection import connect
    from localcluster.testing import LocalClusterRunner

    with tempfile.TemporaryDirectory(prefix=prefix) as home, LocalClusterRunner(Path(home)) as cluster:
        os.environ.update(KUBECONFIG=str(cluster.kubeconfig), LAB_HOME=home)
        cluster.kubectl("create", "namespace", "bookstore", check=False)
        with connect() as ctx:
            yield cluster, ctx
