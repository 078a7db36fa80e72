"""Fixtures for the frame's unit tests: a fake cluster, and an environment that does not leak in."""

import pytest

from .fake_cluster import FakeConnection


@pytest.fixture
def cluster() -> FakeConnection:
    """A cluster with the bookstore namespace and nothing in it."""
    connection = FakeConnection()
    connection.core.namespaces["bookstore"] = "Active"
    return connection


@pytest.fixture(autouse=True)
def _lab_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks read LAB_NAMESPACE; tests must not depend on the developer's environment."""
    monkeypatch.delenv("LAB_NAMESPACE", raising=False)
