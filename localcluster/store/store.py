"""The object store: an in-memory index written through to SQLite, and the watch event log.

It plays etcd's part for the API server: one global, monotonically increasing resourceVersion,
atomic compare-and-swap writes, and an ordered event history that watches resume from. Objects are
kept as parsed dicts together with their JSON encoding, so a LIST can be served without re-encoding.
All calls run on the server's event loop thread, which makes each write atomic without locks.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ObjectKey = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped kinds


class StoreError(Exception):
    """Base of the store's own errors; the API layer turns them into `Status` answers."""


class ObjectExists(StoreError):
    pass


class ObjectMissing(StoreError):
    pass


class VersionConflict(StoreError):
    """The caller's resourceVersion precondition does not match the stored object."""


class Compacted(StoreError):
    """The requested resourceVersion is older than the retained event history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Entry:
    """A stored object: its parsed form (never mutated) and its JSON encoding."""

    obj: dict[str, Any]
    raw: bytes

    @property
    def resource_version(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED or DELETED
    resource_version: int
    key: str
    namespace: str
    entry: Entry
    #: The object before this change, so selector-filtered watches can see objects leave their view.
    previous: Entry | None = None


@dataclass
class Watch:
    """One subscriber's ordered stream of events for a resource key (and namespace, if given)."""

    key: str | None  # None: every kind (controllers such as the garbage collector)
    namespace: str | None
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)

    def matches(self, event: WatchEvent) -> bool:
        return (self.key is None or event.key == self.key) and (
            self.namespace is None or event.namespace == self.namespace
        )


class Store:
    """Objects by resource key (`apps/deployments`) and (namespace, name), persisted in SQLite."""

    def __init__(self, path: Path, *, history: int = 10_000) -> None:
        # Private (it holds every Secret): SQLite gives its -wal and -shm files the database's mode.
        path.touch(mode=0o600, exist_ok=True)
        for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            if file.exists():
                file.chmod(0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (key TEXT, namespace TEXT, name TEXT, body BLOB,"
            " PRIMARY KEY (key, namespace, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self._objects: dict[str, dict[ObjectKey, Entry]] = {}
        for key, namespace, name, body in self._db.execute("SELECT key, namespace, name, body FROM objects"):
            self._objects.setdefault(key, {})[(namespace, name)] = Entry(json.loads(body), bytes(body))
        row = self._db.execute("SELECT value FROM meta WHERE name = 'resourceVersion'").fetchone()
        self._rv = int(row[0]) if row else 0
        self._history: deque[WatchEvent] = deque()
        self._history_limit = history
        # Events up to and including this version are no longer in the history (a restart forgets all).
        self._compacted = self._rv
        self._watches: list[Watch] = []

    # -- reads ---------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_version(self) -> int:
        """Changes up to this version are no longer in the event history."""
        return self._compacted

    def get(self, key: str, namespace: str, name: str) -> Entry | None:
        return self._objects.get(key, {}).get((namespace, name))

    def list(self, key: str, namespace: str | None = None) -> tuple[list[Entry], int]:
        """Entries sorted by (namespace, name), as etcd's key order, and the store's current version."""
        bucket = self._objects.get(key, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys], self._rv

    def keys(self) -> Iterator[str]:
        return iter(list(self._objects))

    def all_entries(self) -> Iterator[tuple[str, Entry]]:
        """Every stored object with its resource key (a snapshot, safe to write while iterating)."""
        for key, bucket in list(self._objects.items()):
            for entry in list(bucket.values()):
                yield key, entry

    # -- writes --------------------------------------------------------------------------------

    def create(self, key: str, obj: dict[str, Any]) -> Entry:
        namespace, name = _identity(obj)
        if (namespace, name) in self._objects.get(key, {}):
            raise ObjectExists(name)
        return self._write(key, obj, "ADDED", None)

    def update(self, key: str, obj: dict[str, Any], *, expected_version: str | None = None) -> Entry:
        """Replace an object; with `expected_version`, only if the stored one still has that version."""
        namespace, name = _identity(obj)
        previous = self._current(key, namespace, name, expected_version)
        return self._write(key, obj, "MODIFIED", previous)

    def _current(self, key: str, namespace: str, name: str, expected_version: str | None) -> Entry:
        """The stored entry an update or delete acts on: ObjectMissing without one, VersionConflict when
        `expected_version` is given and no longer the stored one."""
        previous = self.get(key, namespace, name)
        if previous is None:
            raise ObjectMissing(name)
        if expected_version and expected_version != previous.obj["metadata"]["resourceVersion"]:
            raise VersionConflict(name)
        return previous

    def delete(self, key: str, namespace: str, name: str, *, expected_version: str | None = None) -> Entry:
        previous = self._current(key, namespace, name, expected_version)
        self._rv += 1
        # The DELETED event carries the object at the deletion's revision, as etcd reports it.
        final = json.loads(previous.raw)
        final["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(final, encode(final))
        with self._transaction():
            self._db.execute("DELETE FROM objects WHERE key=? AND namespace=? AND name=?", (key, namespace, name))
        del self._objects[key][(namespace, name)]
        self._publish(WatchEvent("DELETED", self._rv, key, namespace, entry, previous))
        return entry

    def _write(self, key: str, obj: dict[str, Any], event_type: str, previous: Entry | None) -> Entry:
        namespace, name = _identity(obj)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(obj, encode(obj))
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO objects (key, namespace, name, body) VALUES (?, ?, ?, ?)",
                (key, namespace, name, entry.raw),
            )
        self._objects.setdefault(key, {})[(namespace, name)] = entry
        self._publish(WatchEvent(event_type, self._rv, key, namespace, entry, previous))
        return entry

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One SQLite transaction per write: the object and the new resourceVersion land together."""
        self._db.execute("BEGIN")
        try:
            yield
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('resourceVersion', ?)", (str(self._rv),)
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- watch ---------------------------------------------------------------------------------

    def _publish(self, event: WatchEvent) -> None:
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().resource_version
        for watch in self._watches:
            if watch.matches(event):
                watch.queue.put_nowait(event)

    def watch(self, key: str | None, namespace: str | None, since: int) -> Watch:
        """Subscribe to changes after version `since`, replaying retained history first.

        Raises `Compacted` if events after `since` are no longer all retained (the client must re-list).
        """
        if since < self._compacted:
            raise Compacted(since, self._compacted + 1)
        watch = Watch(key, namespace)
        for event in self._history:
            if event.resource_version > since and watch.matches(event):
                watch.queue.put_nowait(event)
        self._watches.append(watch)
        return watch

    def stop_watch(self, watch: Watch) -> None:
        if watch in self._watches:
            self._watches.remove(watch)

    def close(self) -> None:
        self._watches.clear()
        self._db.close()


def _identity(obj: dict[str, Any]) -> ObjectKey:
    metadata = obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]
