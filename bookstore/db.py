"""A service's SQLite database: one file, WAL mode, schema created when it opens.

One connection per process, used under a lock: the bookstore's transactions are a handful of
statements, so serialising them costs nothing and rules out in-process races. ``BEGIN IMMEDIATE``
takes SQLite's write lock up front, so two processes sharing the file (two replicas on one
volume) serialise too instead of failing half-way with ``SQLITE_BUSY``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from anyio import to_thread

__all__ = ["Database", "DatabaseClosed", "SchemaStep"]

SchemaStep = Callable[[sqlite3.Connection], None]
"""Creates tables (``IF NOT EXISTS``) and seeds rows; run inside the opening transaction."""

_BUSY_TIMEOUT_MS = 5_000


class DatabaseClosed(RuntimeError):
    """The database was used before :meth:`Database.open` or after :meth:`Database.close`."""


class Database:
    """The SQLite file of one deployable, opened with its schema applied."""

    def __init__(self, path: Path, schema: Iterable[SchemaStep]) -> None:
        self.path = path
        self._schema = tuple(schema)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def open(self) -> None:
        """Create the file and its directory if needed, switch to WAL and apply the schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so Python never opens hidden transactions.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error:
            connection.close()
            raise
        self._connection = connection
        try:
            with self.transaction() as transaction:
                for step in self._schema:
                    step(transaction)
        except sqlite3.Error:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """A FastAPI lifespan: open the database (creating its schema) at start-up, close it at shutdown."""
        await to_thread.run_sync(self.open)
        try:
            yield
        finally:
            self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            connection = self._require_open()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same committed state."""
        with self._lock:
            connection = self._require_open()
            connection.execute("BEGIN DEFERRED")
            try:
                yield connection
            finally:
                connection.execute("COMMIT")

    def _require_open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise DatabaseClosed(f"database {self.path} is not open")
        return self._connection
