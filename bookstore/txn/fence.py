"""The TCC fence: one row per branch in the participant's own database, as Seata's ``tcc_fence_log``.

Every try, confirm and cancel of a branch first looks at (and moves) the branch's fence row inside
the same local transaction as the business change, so the two commit together or not at all:

==============  ==========================================================================
no row          try: insert ``tried``, run the try.  confirm: refused, retryable (the try
                has not arrived yet).  cancel: insert ``suspended`` and do nothing (an empty
                rollback), so a try that arrives later is refused (no hanging reservation)
``tried``       try: refused (tried once).  confirm: → ``committed``, apply.
                cancel: → ``rollbacked``, release
``committed``   confirm: nothing (a repeated delivery).  cancel: refused (conflict)
``rollbacked``  cancel: nothing (a repeated delivery).  confirm: refused (conflict)
``suspended``   cancel: nothing.  confirm: refused (conflict).  try: refused
==============  ==========================================================================

This is Seata's ``TCCFenceHandler`` (prepareFence, commitFence, rollbackFence) state for state.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bookstore.errors import BranchConflict, BranchNotTried, TryRefused
from bookstore.models import timestamp

__all__ = [
    "BranchKey",
    "FenceRecord",
    "FenceStatus",
    "PhaseTwoOutcome",
    "cancel_branch",
    "confirm_branch",
    "create_schema",
    "list_fences",
    "pop_held",
    "try_branch",
]

T = TypeVar("T")


class FenceStatus(enum.StrEnum):
    """The states of Seata's ``tcc_fence_log`` (STATUS_TRIED=1 ... STATUS_SUSPENDED=4), by name."""

    TRIED = "tried"
    COMMITTED = "committed"
    ROLLBACKED = "rollbacked"
    SUSPENDED = "suspended"


class PhaseTwoOutcome(enum.StrEnum):
    """What a confirm or cancel did: its work, nothing (it was delivered before), or an empty rollback."""

    DONE = "done"
    ALREADY = "already"
    EMPTY = "empty"


@dataclass(frozen=True)
class BranchKey:
    """A branch of a global transaction: the coordinator's xid and the branch id it gave."""

    xid: str
    branch_id: int


@dataclass(frozen=True)
class FenceRecord:
    xid: str
    branch_id: int
    action: str
    status: FenceStatus
    created_at: str
    updated_at: str


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the fence table (``tcc_fence_log``)."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS tcc_fence_log (
            xid TEXT NOT NULL,
            branch_id INTEGER NOT NULL,
            action TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('tried', 'committed', 'rollbacked', 'suspended')),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (xid, branch_id)
        )"""
    )
    connection.execute("CREATE INDEX IF NOT EXISTS tcc_fence_by_status ON tcc_fence_log (status, created_at)")


def _status(connection: sqlite3.Connection, key: BranchKey) -> FenceStatus | None:
    row = connection.execute(
        "SELECT status FROM tcc_fence_log WHERE xid = ? AND branch_id = ?", (key.xid, key.branch_id)
    ).fetchone()
    return None if row is None else FenceStatus(row["status"])


def _insert(connection: sqlite3.Connection, key: BranchKey, action: str, status: FenceStatus) -> bool:
    now = timestamp()
    inserted = connection.execute(
        """INSERT OR IGNORE INTO tcc_fence_log (xid, branch_id, action, status, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)""",
        (key.xid, key.branch_id, action, status, now, now),
    )
    return inserted.rowcount == 1


def _move(connection: sqlite3.Connection, key: BranchKey, status: FenceStatus) -> None:
    connection.execute(
        "UPDATE tcc_fence_log SET status = ?, updated_at = ? WHERE xid = ? AND branch_id = ?",
        (status, timestamp(), key.xid, key.branch_id),
    )


def try_branch(connection: sqlite3.Connection, key: BranchKey, action: str, run: Callable[[], T]) -> T:
    """Record the try, then run it; a branch already tried or cancelled is refused with :class:`TryRefused`."""
    if not _insert(connection, key, action, FenceStatus.TRIED):
        status = _status(connection, key)
        why = (
            "it was cancelled before its try arrived; trying now would leave a reservation nobody releases"
            if status in (FenceStatus.SUSPENDED, FenceStatus.ROLLBACKED)
            else "it was tried already"
        )
        raise TryRefused(f"{action} of branch {key.branch_id} of {key.xid} is refused: {why}", fence=status)
    return run()


def confirm_branch(
    connection: sqlite3.Connection, key: BranchKey, action: str, run: Callable[[], object]
) -> tuple[FenceStatus, PhaseTwoOutcome]:
    """Apply a tried branch once; a repeated confirm does nothing. Returns the fence state and what was done."""
    status = _status(connection, key)
    if status is None:
        raise BranchNotTried(f"{action} of branch {key.branch_id} of {key.xid} was never tried here", fence=None)
    if status is FenceStatus.COMMITTED:
        return status, PhaseTwoOutcome.ALREADY
    if status is not FenceStatus.TRIED:
        raise BranchConflict(f"branch {key.branch_id} of {key.xid} cannot be confirmed: it is {status}", fence=status)
    _move(connection, key, FenceStatus.COMMITTED)
    run()
    return FenceStatus.COMMITTED, PhaseTwoOutcome.DONE


def cancel_branch(
    connection: sqlite3.Connection, key: BranchKey, action: str, run: Callable[[], object]
) -> tuple[FenceStatus, PhaseTwoOutcome]:
    """Release a tried branch once; a cancel before any try is recorded (``suspended``) and does nothing."""
    status = _status(connection, key)
    if status is None:
        _insert(connection, key, action, FenceStatus.SUSPENDED)
        return FenceStatus.SUSPENDED, PhaseTwoOutcome.EMPTY
    if status in (FenceStatus.ROLLBACKED, FenceStatus.SUSPENDED):
        return status, PhaseTwoOutcome.ALREADY
    if status is FenceStatus.COMMITTED:
        raise BranchConflict(f"branch {key.branch_id} of {key.xid} cannot be cancelled: it is committed", fence=status)
    _move(connection, key, FenceStatus.ROLLBACKED)
    run()
    return FenceStatus.ROLLBACKED, PhaseTwoOutcome.DONE


def pop_held(connection: sqlite3.Connection, table: str, columns: str, key: BranchKey) -> sqlite3.Row:
    """The row the branch's try left in ``table`` (its ``columns``), deleted: what a confirm or cancel settles.

    The fence lets confirm or cancel through only for a branch whose try committed, so the row exists.
    """
    where = "WHERE xid = ? AND branch_id = ?"
    row = connection.execute(f"SELECT {columns} FROM {table} {where}", (key.xid, key.branch_id)).fetchone()
    if row is None:
        raise LookupError(
            f"nothing held in {table} for branch {key.branch_id} of {key.xid}, though its fence says tried"
        )
    connection.execute(f"DELETE FROM {table} {where}", (key.xid, key.branch_id))
    return row


def list_fences(
    connection: sqlite3.Connection, *, xid: str | None = None, status: FenceStatus | None = None, limit: int = 100
) -> list[FenceRecord]:
    """Fence rows, newest first, optionally of one transaction or in one state."""
    rows = connection.execute(
        """SELECT * FROM tcc_fence_log
           WHERE (:xid IS NULL OR xid = :xid) AND (:status IS NULL OR status = :status)
           ORDER BY created_at DESC, branch_id DESC LIMIT :limit""",
        {"xid": xid, "status": status, "limit": limit},
    ).fetchall()
    return [
        FenceRecord(
            xid=row["xid"],
            branch_id=row["branch_id"],
            action=row["action"],
            status=FenceStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
        for row in rows
    ]
