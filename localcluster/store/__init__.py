"""Persistent object store: SQLite, resourceVersion and the watch event log."""

from localcluster.store.store import (
    Compacted,
    Entry,
    ObjectExists,
    ObjectMissing,
    Store,
    StoreError,
    VersionConflict,
    Watch,
    WatchEvent,
)

__all__ = [
    "Compacted",
    "Entry",
    "ObjectExists",
    "ObjectMissing",
    "Store",
    "StoreError",
    "VersionConflict",
    "Watch",
    "WatchEvent",
]
