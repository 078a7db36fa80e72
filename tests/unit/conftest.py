"""The real API pipeline in-process, for every unit test that needs it: the registry of served kinds
(read once: it never changes), the schema index over it (one per module: it caches what it loads),
and a cluster (store, registry, schemas, bootstrap objects) in a temporary directory of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.api.cluster import Cluster
from localcluster.api.resources import ResourceRegistry
from localcluster.api.schemas import SchemaIndex
from localcluster.server import bootstrap
from localcluster.settings import Settings
from localcluster.store import Store


@pytest.fixture(scope="session")
def registry() -> ResourceRegistry:
    return ResourceRegistry.load(Settings().schemas_dir)


@pytest.fixture(scope="module")
def index(registry: ResourceRegistry) -> SchemaIndex:
    return SchemaIndex(registry)


@pytest.fixture
def cluster(tmp_path: Path, registry: ResourceRegistry) -> Iterator[Cluster]:
    store = Store(tmp_path / "store.sqlite")
    cluster = Cluster(store, registry, SchemaIndex(registry))
    bootstrap(cluster)
    try:
        yield cluster
    finally:
        store.close()
