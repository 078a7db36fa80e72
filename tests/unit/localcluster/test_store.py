"""The object store: resourceVersion, compare-and-swap, persistence, watch history and compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from localcluster.store import Compacted, ObjectExists, ObjectMissing, Store, VersionConflict


def configmap(name: str, namespace: str = "ns", **data: str) -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "data": data}


@pytest.fixture
def store(tmp_path: Path):
    opened = Store(tmp_path / "store.sqlite", history=5)
    yield opened
    opened.close()


def test_every_write_gets_the_next_resource_version(store: Store) -> None:
    first = store.create("core/configmaps", configmap("a"))
    second = store.update("core/configmaps", configmap("a", k="v"))
    deleted = store.delete("core/configmaps", "ns", "a")
    assert [e.resource_version for e in (first, second, deleted)] == [1, 2, 3]
    assert store.get("core/configmaps", "ns", "a") is None


def test_compare_and_swap(store: Store) -> None:
    store.create("core/configmaps", configmap("a"))
    with pytest.raises(ObjectExists):
        store.create("core/configmaps", configmap("a"))
    with pytest.raises(VersionConflict):
        store.update("core/configmaps", configmap("a", k="v"), expected_version="99")
    with pytest.raises(ObjectMissing):
        store.update("core/configmaps", configmap("b"))
    with pytest.raises(VersionConflict):
        store.delete("core/configmaps", "ns", "a", expected_version="99")


def test_list_is_sorted_and_filtered_by_namespace(store: Store) -> None:
    for namespace, name in [("b", "z"), ("a", "y"), ("b", "a")]:
        store.create("core/configmaps", configmap(name, namespace))
    entries, version = store.list("core/configmaps")
    assert [(e.obj["metadata"]["namespace"], e.obj["metadata"]["name"]) for e in entries] == [
        ("a", "y"),
        ("b", "a"),
        ("b", "z"),
    ]
    assert version == 3
    assert len(store.list("core/configmaps", "b")[0]) == 2


def test_objects_and_version_survive_a_reopen(tmp_path: Path) -> None:
    first = Store(tmp_path / "s.sqlite")
    first.create("core/configmaps", configmap("kept", k="v"))
    first.create("core/configmaps", configmap("gone"))
    first.delete("core/configmaps", "ns", "gone")
    first.close()
    second = Store(tmp_path / "s.sqlite")
    kept = second.get("core/configmaps", "ns", "kept")
    assert kept is not None and kept.obj["data"] == {"k": "v"} and kept.resource_version == 1
    assert second.get("core/configmaps", "ns", "gone") is None
    assert second.resource_version == 3
    # History does not survive a restart: watching from before it is 410.
    with pytest.raises(Compacted):
        second.watch("core/configmaps", None, 1)
    second.close()


def test_watch_replays_history_then_follows_live(store: Store) -> None:
    async def scenario() -> list[tuple[str, int]]:
        store.create("core/configmaps", configmap("a"))
        store.create("core/configmaps", configmap("b", "other"))
        watch = store.watch("core/configmaps", "ns", 0)
        store.update("core/configmaps", configmap("a", k="v"))
        store.create("core/secrets", configmap("s"))
        store.delete("core/configmaps", "ns", "a")
        seen = []
        while not watch.queue.empty():
            event = await watch.queue.get()
            seen.append((event.type, event.resource_version))
        store.stop_watch(watch)
        return seen

    assert asyncio.run(scenario()) == [("ADDED", 1), ("MODIFIED", 3), ("DELETED", 5)]


def test_history_is_compacted_beyond_its_limit(store: Store) -> None:
    for index in range(8):
        store.create("core/configmaps", configmap(f"c{index}"))
    assert store.compacted_version == 3
    with pytest.raises(Compacted):
        store.watch("core/configmaps", None, 2)
    watch = store.watch("core/configmaps", None, 3)
    assert watch.queue.qsize() == 5


def test_deleted_event_carries_the_deletion_version_and_the_previous_object(store: Store) -> None:
    store.create("core/configmaps", configmap("a", k="v"))
    watch = store.watch(None, None, store.resource_version)
    store.delete("core/configmaps", "ns", "a")
    event = watch.queue.get_nowait()
    assert event.type == "DELETED" and event.entry.obj["metadata"]["resourceVersion"] == "2"
    assert event.previous is not None and event.previous.obj["metadata"]["resourceVersion"] == "1"
