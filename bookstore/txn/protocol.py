"""What the coordinator (``tc``) and its clients say to each other: the request and answer bodies of its API.

Statuses follow Seata's ``GlobalStatus`` and ``BranchStatus``, by name: a global transaction is
``begin`` until its TM (the storefront) asks for a decision or its timeout passes, then
``committing`` / ``rollbacking`` / ``timeout_rollbacking`` while phase two reaches its branches,
then ``committed`` / ``rollbacked`` / ``timeout_rollbacked``. A branch a participant refused in
phase two for good (a confirm after a cancel: never in a correct run) leaves it ``commit_failed`` or
``rollback_failed``, for a person to look at.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bookstore.models import ORDER_ID_PATTERN

__all__ = [
    "BeginRequest",
    "BranchSpec",
    "BranchStatus",
    "BranchView",
    "DecisionRequest",
    "EventList",
    "EventView",
    "GlobalStatus",
    "GlobalTransactionView",
    "TransactionList",
]

Xid = Annotated[str, Field(pattern=ORDER_ID_PATTERN, description="the global transaction id (32 hex digits)")]
_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"


class GlobalStatus(enum.StrEnum):
    BEGIN = "begin"
    COMMITTING = "committing"
    ROLLBACKING = "rollbacking"
    TIMEOUT_ROLLBACKING = "timeout_rollbacking"
    COMMITTED = "committed"
    ROLLBACKED = "rollbacked"
    TIMEOUT_ROLLBACKED = "timeout_rollbacked"
    COMMIT_FAILED = "commit_failed"
    ROLLBACK_FAILED = "rollback_failed"

    @property
    def decided(self) -> bool:
        return self is not GlobalStatus.BEGIN

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def commits(self) -> bool:
        """Whether the decision was to commit (the purchase happened, or will once phase two ends)."""
        return self in (GlobalStatus.COMMITTING, GlobalStatus.COMMITTED, GlobalStatus.COMMIT_FAILED)


_FINISHED = frozenset(
    {
        GlobalStatus.COMMITTED,
        GlobalStatus.ROLLBACKED,
        GlobalStatus.TIMEOUT_ROLLBACKED,
        GlobalStatus.COMMIT_FAILED,
        GlobalStatus.ROLLBACK_FAILED,
    }
)


class BranchStatus(enum.StrEnum):
    REGISTERED = "registered"
    COMMITTED = "committed"
    ROLLBACKED = "rollbacked"
    FAILED = "failed"


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BranchSpec(_Request):
    """A branch to register: which participant (``url``) holds it, under which TCC action."""

    resource: Annotated[str, Field(pattern=_NAME_PATTERN, examples=["stock"])]
    action: Annotated[str, Field(pattern=_NAME_PATTERN, examples=["reserve-stock"])]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+$", max_length=256, examples=["http://stock"])]


class BeginRequest(_Request):
    """Body of ``POST /api/transactions``.

    ``branches`` registers branches in the same call (one round trip for a purchase's two);
    ``idempotency_key`` makes a second begin with the same key answer the first transaction;
    ``application_data`` is kept for the TM (Seata's applicationData), e.g. what it was asked to do.
    """

    name: Annotated[str, Field(pattern=_NAME_PATTERN, examples=["purchase"])]
    timeout_seconds: Annotated[float | None, Field(gt=0, le=3600)] = None
    idempotency_key: Annotated[str | None, Field(min_length=1, max_length=320)] = None
    application_data: dict[str, Any] | None = None
    branches: Annotated[list[BranchSpec], Field(max_length=16)] = []


class DecisionRequest(_Request):
    """Body of ``POST .../commit`` and ``.../rollback``: what the TM wants remembered as the outcome."""

    outcome: dict[str, Any] | None = None


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class BranchView(_Answer):
    branch_id: int
    resource: str
    action: str
    url: str
    status: BranchStatus
    attempts: int
    last_error: str | None
    registered_at: str
    finished_at: str | None


class EventView(_Answer):
    """One line of the transaction log: what happened to a transaction or one of its branches."""

    id: int
    xid: str
    branch_id: int | None
    at: str
    event: str
    detail: str


class GlobalTransactionView(_Answer):
    """A global transaction as ``GET /api/transactions/{xid}`` shows it; ``created`` is false for a repeat."""

    xid: str
    name: str
    status: GlobalStatus
    timeout_seconds: float
    begun_at: str
    deadline: str
    decided_at: str | None
    finished_at: str | None
    idempotency_key: str | None
    application_data: dict[str, Any] | None
    outcome: dict[str, Any] | None
    #: The x-bookstore-fault the transaction began with (lab mode), sent with each branch's first delivery.
    faults: str = ""
    branches: list[BranchView]
    events: list[EventView] = []
    created: bool = True


class TransactionList(_Answer):
    """``GET /api/transactions``: the newest transactions, and how many there are in each status."""

    counts: dict[GlobalStatus, int]
    transactions: list[GlobalTransactionView]


class EventList(_Answer):
    events: list[EventView]
