"""The coordinator's transaction log: global transactions, their branches and every event, in ``tc.sqlite3``.

Each change is one SQLite transaction, so what the log says survives a crash of ``tc`` at any point:
a decision once answered is never forgotten, and on start every transaction decided but unfinished
is driven again. Deadlines are wall-clock (epoch seconds), so a restarted ``tc`` times out a
transaction begun before it died at the same moment the old one would have.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bookstore.db import Database
from bookstore.errors import TransactionNotActive, UnknownTransaction
from bookstore.models import timestamp
from bookstore.txn.protocol import (
    BranchSpec,
    BranchStatus,
    BranchView,
    EventView,
    GlobalStatus,
    GlobalTransactionView,
)

__all__ = [
    "Delivery",
    "DeliveryOutcome",
    "NewTransaction",
    "PendingBranch",
    "PhaseTwo",
    "TransactionLog",
    "create_schema",
]

_DECIDED_BY = {
    True: GlobalStatus.COMMITTING,
    False: GlobalStatus.ROLLBACKING,
}
_FINAL = {
    GlobalStatus.COMMITTING: GlobalStatus.COMMITTED,
    GlobalStatus.ROLLBACKING: GlobalStatus.ROLLBACKED,
    GlobalStatus.TIMEOUT_ROLLBACKING: GlobalStatus.TIMEOUT_ROLLBACKED,
}
_FAILED = {True: GlobalStatus.COMMIT_FAILED, False: GlobalStatus.ROLLBACK_FAILED}


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the log's tables: global transactions, branches and events."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS global_transactions (
            xid TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            timeout_seconds REAL NOT NULL,
            begun_at TEXT NOT NULL,
            deadline REAL NOT NULL,
            decided_at TEXT,
            finished_at TEXT,
            idempotency_key TEXT,
            application_data TEXT,
            outcome TEXT,
            faults TEXT NOT NULL DEFAULT ''
        )"""
    )
    connection.execute(
        """CREATE UNIQUE INDEX IF NOT EXISTS global_by_idempotency_key
           ON global_transactions (name, idempotency_key) WHERE idempotency_key IS NOT NULL"""
    )
    connection.execute("CREATE INDEX IF NOT EXISTS global_by_status ON global_transactions (status, deadline)")
    connection.execute(
        """CREATE TABLE IF NOT EXISTS branches (
            branch_id INTEGER PRIMARY KEY AUTOINCREMENT,
            xid TEXT NOT NULL REFERENCES global_transactions (xid),
            resource TEXT NOT NULL,
            action TEXT NOT NULL,
            url TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            registered_at TEXT NOT NULL,
            finished_at TEXT
        )"""
    )
    connection.execute("CREATE INDEX IF NOT EXISTS branches_by_xid ON branches (xid)")
    connection.execute(
        """CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            xid TEXT NOT NULL,
            branch_id INTEGER,
            at TEXT NOT NULL,
            event TEXT NOT NULL,
            detail TEXT NOT NULL
        )"""
    )
    connection.execute("CREATE INDEX IF NOT EXISTS events_by_xid ON events (xid, id)")


@dataclass(frozen=True)
class NewTransaction:
    """What a TM asks for when it begins a global transaction."""

    name: str
    timeout_seconds: float
    idempotency_key: str | None = None
    application_data: dict[str, Any] | None = None
    faults: str = ""
    branches: tuple[BranchSpec, ...] = ()


@dataclass(frozen=True)
class PendingBranch:
    """A branch phase two has not yet reached, with what the coordinator needs to call it."""

    xid: str
    branch_id: int
    action: str
    url: str
    attempts: int


@dataclass(frozen=True)
class PhaseTwo:
    """A decided, unfinished transaction: which way it goes and the branches still to tell."""

    xid: str
    status: GlobalStatus
    faults: str
    branches: tuple[PendingBranch, ...]

    @property
    def commits(self) -> bool:
        return self.status.commits


class DeliveryOutcome(enum.Enum):
    """What one confirm or cancel delivery came to."""

    ANSWERED = "answered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True)
class Delivery:
    branch: PendingBranch
    outcome: DeliveryOutcome
    detail: str


class TransactionLog:
    """Every read and change of the log, each in its own SQLite transaction (call them from threads)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # --- begin and branches --------------------------------------------------------------------

    def begin(self, new: NewTransaction) -> GlobalTransactionView:
        """Start a global transaction with its first branches; a known idempotency key answers the first one."""
        with self.database.transaction() as connection:
            if new.idempotency_key is not None:
                row = connection.execute(
                    "SELECT xid FROM global_transactions WHERE name = ? AND idempotency_key = ?",
                    (new.name, new.idempotency_key),
                ).fetchone()
                if row is not None:
                    return self._view(connection, row["xid"], events=False).model_copy(update={"created": False})
            xid = uuid.uuid4().hex
            now = time.time()
            connection.execute(
                """INSERT INTO global_transactions
                   (xid, name, status, timeout_seconds, begun_at, deadline, idempotency_key, application_data, faults)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    xid,
                    new.name,
                    GlobalStatus.BEGIN,
                    new.timeout_seconds,
                    _iso(now),
                    now + new.timeout_seconds,
                    new.idempotency_key,
                    _dumps(new.application_data),
                    new.faults,
                ),
            )
            _event(connection, xid, None, "begin", f"{new.name}, timeout {new.timeout_seconds:g}s")
            for spec in new.branches:
                _add_branch(connection, xid, spec)
            return self._view(connection, xid, events=False)

    def register(self, xid: str, spec: BranchSpec) -> BranchView:
        """Add a branch to a transaction still in ``begin``; refused once it is decided or past its deadline."""
        with self.database.transaction() as connection:
            status, deadline = self._status(connection, xid)
            if status is GlobalStatus.BEGIN and deadline < time.time():
                status = self._time_out(connection, xid)
            if status is not GlobalStatus.BEGIN:
                raise TransactionNotActive(f"transaction {xid} is {status}: no branch can join it", status=status)
            branch_id = _add_branch(connection, xid, spec)
            return next(b for b in _branches(connection, xid) if b.branch_id == branch_id)

    # --- decisions ----------------------------------------------------------------------------

    def decide(self, xid: str, *, commit: bool, outcome: dict[str, Any] | None) -> GlobalTransactionView:
        """Record the TM's decision once. Asking again the same way answers the same; the other way is refused."""
        with self.database.transaction() as connection:
            status, deadline = self._status(connection, xid)
            if status is GlobalStatus.BEGIN and commit and deadline < time.time():
                status = self._time_out(connection, xid)
            if status is GlobalStatus.BEGIN:
                status = _DECIDED_BY[commit]
                connection.execute(
                    "UPDATE global_transactions SET status = ?, decided_at = ?, outcome = ? WHERE xid = ?",
                    (status, timestamp(), _dumps(outcome), xid),
                )
                _event(connection, xid, None, status.value, "decided by the TM")
                self._finish_if_done(connection, xid)
            elif status.commits != commit:
                raise TransactionNotActive(
                    f"transaction {xid} is {status}: it cannot {'commit' if commit else 'roll back'} now", status=status
                )
            return self._view(connection, xid, events=False)

    def time_out_expired(self) -> list[str]:
        """Roll back (``timeout_rollbacking``) every transaction still in ``begin`` past its deadline."""
        with self.database.transaction() as connection:
            rows = connection.execute(
                "SELECT xid FROM global_transactions WHERE status = ? AND deadline < ?",
                (GlobalStatus.BEGIN, time.time()),
            ).fetchall()
            for row in rows:
                self._time_out(connection, row["xid"])
            return [row["xid"] for row in rows]

    def _time_out(self, connection: sqlite3.Connection, xid: str) -> GlobalStatus:
        connection.execute(
            "UPDATE global_transactions SET status = ?, decided_at = ? WHERE xid = ?",
            (GlobalStatus.TIMEOUT_ROLLBACKING, timestamp(), xid),
        )
        _event(connection, xid, None, GlobalStatus.TIMEOUT_ROLLBACKING.value, "global timeout: no decision in time")
        self._finish_if_done(connection, xid)
        return GlobalStatus.TIMEOUT_ROLLBACKING

    # --- phase two ----------------------------------------------------------------------------

    def phase_two(self, xid: str) -> PhaseTwo | None:
        """What is left of a decided transaction's phase two (None once it is finished)."""
        with self.database.snapshot() as connection:
            row = connection.execute("SELECT status, faults FROM global_transactions WHERE xid = ?", (xid,)).fetchone()
            if row is None or not GlobalStatus(row["status"]).decided or GlobalStatus(row["status"]).finished:
                return None
            pending = connection.execute(
                "SELECT branch_id, action, url, attempts FROM branches WHERE xid = ? AND status = ? ORDER BY branch_id",
                (xid, BranchStatus.REGISTERED),
            ).fetchall()
            return PhaseTwo(
                xid=xid,
                status=GlobalStatus(row["status"]),
                faults=row["faults"],
                branches=tuple(PendingBranch(xid=xid, **branch) for branch in pending),
            )

    def unfinished(self) -> list[str]:
        """Decided transactions whose phase two has not reached every branch, oldest first."""
        with self.database.snapshot() as connection:
            rows = connection.execute(
                "SELECT xid FROM global_transactions WHERE status IN (?, ?, ?) ORDER BY begun_at",
                tuple(_FINAL),
            ).fetchall()
        return [row["xid"] for row in rows]

    def record_deliveries(self, phase: PhaseTwo, deliveries: Iterable[Delivery]) -> bool:
        """Log a round of phase two in one SQLite transaction; True once the transaction is finished."""
        commit = phase.commits
        with self.database.transaction() as connection:
            for delivery in deliveries:
                branch = delivery.branch
                if delivery.outcome is DeliveryOutcome.ANSWERED:
                    status = BranchStatus.COMMITTED if commit else BranchStatus.ROLLBACKED
                    connection.execute(
                        "UPDATE branches SET status = ?, attempts = attempts + 1, finished_at = ? WHERE branch_id = ?",
                        (status, timestamp(), branch.branch_id),
                    )
                    _event(connection, branch.xid, branch.branch_id, status.value, delivery.detail)
                elif delivery.outcome is DeliveryOutcome.RETRY:
                    connection.execute(
                        "UPDATE branches SET attempts = attempts + 1, last_error = ? WHERE branch_id = ?",
                        (delivery.detail, branch.branch_id),
                    )
                    _event(connection, branch.xid, branch.branch_id, "retry", delivery.detail)
                else:
                    # The participant's fence says the opposite was done: never in a correct run, so stop and say so.
                    connection.execute(
                        "UPDATE branches SET status = ?, attempts = attempts + 1, last_error = ?, finished_at = ? "
                        "WHERE branch_id = ?",
                        (BranchStatus.FAILED, delivery.detail, timestamp(), branch.branch_id),
                    )
                    connection.execute(
                        "UPDATE global_transactions SET status = ?, finished_at = ? WHERE xid = ?",
                        (_FAILED[commit], timestamp(), branch.xid),
                    )
                    _event(connection, branch.xid, branch.branch_id, _FAILED[commit].value, delivery.detail)
            self._finish_if_done(connection, phase.xid)
            return self._status(connection, phase.xid)[0].finished

    def _finish_if_done(self, connection: sqlite3.Connection, xid: str) -> None:
        status, _ = self._status(connection, xid)
        left = connection.execute(
            "SELECT COUNT(*) AS n FROM branches WHERE xid = ? AND status = ?", (xid, BranchStatus.REGISTERED)
        ).fetchone()["n"]
        if status in _FINAL and left == 0:
            connection.execute(
                "UPDATE global_transactions SET status = ?, finished_at = ? WHERE xid = ?",
                (_FINAL[status], timestamp(), xid),
            )
            _event(connection, xid, None, _FINAL[status].value, "every branch answered")

    # --- reading ------------------------------------------------------------------------------

    def get(self, xid: str, *, events: bool = True) -> GlobalTransactionView:
        with self.database.snapshot() as connection:
            return self._view(connection, xid, events=events)

    def newest(
        self, *, status: GlobalStatus | None, name: str | None, limit: int
    ) -> tuple[dict[GlobalStatus, int], list[GlobalTransactionView]]:
        """The newest transactions (optionally of one status or name), and the count in each status."""
        with self.database.snapshot() as connection:
            counts = {
                GlobalStatus(row["status"]): row["n"]
                for row in connection.execute("SELECT status, COUNT(*) AS n FROM global_transactions GROUP BY status")
            }
            rows = connection.execute(
                """SELECT xid FROM global_transactions
                   WHERE (:status IS NULL OR status = :status) AND (:name IS NULL OR name = :name)
                   ORDER BY begun_at DESC, rowid DESC LIMIT :limit""",
                {"status": status, "name": name, "limit": limit},
            ).fetchall()
            return counts, [self._view(connection, row["xid"], events=False) for row in rows]

    def events(self, *, after: int, limit: int) -> list[EventView]:
        """Log lines after id ``after``, oldest first (a reader follows the log by passing the last id seen)."""
        with self.database.snapshot() as connection:
            rows = connection.execute("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
            return [EventView(**row) for row in rows]

    def _status(self, connection: sqlite3.Connection, xid: str) -> tuple[GlobalStatus, float]:
        row = connection.execute("SELECT status, deadline FROM global_transactions WHERE xid = ?", (xid,)).fetchone()
        if row is None:
            raise UnknownTransaction(f"there is no global transaction {xid!r}", xid=xid)
        return GlobalStatus(row["status"]), row["deadline"]

    def _view(self, connection: sqlite3.Connection, xid: str, *, events: bool) -> GlobalTransactionView:
        row = connection.execute("SELECT * FROM global_transactions WHERE xid = ?", (xid,)).fetchone()
        if row is None:
            raise UnknownTransaction(f"there is no global transaction {xid!r}", xid=xid)
        lines: Iterable[sqlite3.Row] = (
            connection.execute("SELECT * FROM events WHERE xid = ? ORDER BY id", (xid,)) if events else ()
        )
        return GlobalTransactionView(
            xid=row["xid"],
            name=row["name"],
            status=GlobalStatus(row["status"]),
            timeout_seconds=row["timeout_seconds"],
            begun_at=row["begun_at"],
            deadline=_iso(row["deadline"]),
            decided_at=row["decided_at"],
            finished_at=row["finished_at"],
            idempotency_key=row["idempotency_key"],
            application_data=_loads(row["application_data"]),
            outcome=_loads(row["outcome"]),
            faults=row["faults"],
            branches=_branches(connection, xid),
            events=[EventView(**line) for line in lines],
        )


def _add_branch(connection: sqlite3.Connection, xid: str, spec: BranchSpec) -> int:
    inserted = connection.execute(
        "INSERT INTO branches (xid, resource, action, url, status, registered_at) VALUES (?, ?, ?, ?, ?, ?)",
        (xid, spec.resource, spec.action, spec.url, BranchStatus.REGISTERED, timestamp()),
    )
    branch_id = int(inserted.lastrowid or 0)
    _event(connection, xid, branch_id, "branch registered", f"{spec.resource}: {spec.action} at {spec.url}")
    return branch_id


def _branches(connection: sqlite3.Connection, xid: str) -> list[BranchView]:
    rows = connection.execute("SELECT * FROM branches WHERE xid = ? ORDER BY branch_id", (xid,)).fetchall()
    return [BranchView(**{key: value for key, value in dict(row).items() if key != "xid"}) for row in rows]


def _event(connection: sqlite3.Connection, xid: str, branch_id: int | None, event: str, detail: str) -> None:
    connection.execute(
        "INSERT INTO events (xid, branch_id, at, event, detail) VALUES (?, ?, ?, ?, ?)",
        (xid, branch_id, timestamp(), event, detail[:500]),
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)
