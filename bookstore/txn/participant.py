"""A TCC participant's HTTP face: try, confirm and cancel of each action, fenced, plus the fence log.

=====  ==============================  =========================================================
POST   ``/txn/{action}/try``           the action's arguments with ``xid`` and ``branch_id``:
                                       reserve (refusals as for a purchase: 404, 409)
POST   ``/txn/{action}/confirm``       ``{"xid", "branch_id"}``: apply; again: nothing
POST   ``/txn/{action}/cancel``        ``{"xid", "branch_id"}``: release; before its try: recorded
                                       empty, and that try will be refused
GET    ``/txn/fences``                 the fence log, newest first (``?xid=``, ``?status=``)
=====  ==============================  =========================================================

Each call runs in one local transaction with its fence row (:mod:`bookstore.txn.fence`). The
coordinator calls confirm and cancel; the storefront calls try. The faults ``<service>.try``,
``.confirm`` and ``.cancel`` (:mod:`bookstore.txn.faults`) strike around that local transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from bookstore.db import Database
from bookstore.models import ORDER_ID_PATTERN, BranchRequest, timestamp
from bookstore.txn import faults
from bookstore.txn.fence import (
    BranchKey,
    FenceStatus,
    PhaseTwoOutcome,
    cancel_branch,
    confirm_branch,
    list_fences,
    try_branch,
)
from bookstore.web import in_worker_thread

__all__ = ["BranchAnswer", "FenceList", "FenceView", "TccAction", "create_participant_router"]

Arguments = TypeVar("Arguments", bound=BranchRequest)


@dataclass(frozen=True)
class TccAction(Generic[Arguments]):
    """One TCC action a participant offers, as functions on a connection inside its transaction.

    ``service`` names the fault points (``stock`` → ``stock.try`` ...); ``reserve`` gets the try's
    arguments and the time, ``apply`` and ``release`` the branch's xid and id.
    """

    name: str
    service: str
    arguments: type[Arguments]
    reserve: Callable[[sqlite3.Connection, Arguments, str], BaseModel]
    apply: Callable[[sqlite3.Connection, str, int], object]
    release: Callable[[sqlite3.Connection, str, int], object]


class BranchAnswer(BaseModel):
    """What a try, confirm or cancel did to the branch: its fence state now, and what this call did."""

    model_config = ConfigDict(frozen=True)

    action: str
    xid: str
    branch_id: int
    fence: FenceStatus
    outcome: PhaseTwoOutcome
    result: dict[str, Any] | None = None


class FenceView(BaseModel):
    model_config = ConfigDict(frozen=True)

    xid: str
    branch_id: int
    action: str
    status: FenceStatus
    created_at: str
    updated_at: str


class FenceList(BaseModel):
    fences: list[FenceView]


def create_participant_router(database: Database, actions: list[TccAction[Any]]) -> APIRouter:
    """The ``/txn`` routes for ``actions``, each phase in one local transaction with its fence row."""
    router = APIRouter(prefix="/txn", tags=["tcc"])
    for action in actions:
        _add_action(router, database, action)

    @router.get("/fences")
    @in_worker_thread
    def fences(
        xid: Annotated[str | None, Query(pattern=ORDER_ID_PATTERN)] = None,
        status: FenceStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> FenceList:
        """The fence log, newest first: one row per branch this participant has seen."""
        with database.snapshot() as connection:
            rows = list_fences(connection, xid=xid, status=status, limit=limit)
        return FenceList(fences=[FenceView(**vars(row)) for row in rows])

    return router


def _add_action(router: APIRouter, database: Database, action: TccAction[Arguments]) -> None:
    # Each route's body runs in a worker thread, so SQLite never blocks the event loop.
    points = {phase: faults.FaultPoint(f"{action.service}.{phase}") for phase in ("try", "confirm", "cancel")}

    def try_(request: BranchRequest) -> BranchAnswer:
        key = BranchKey(request.xid, request.branch_id)
        faults.before(points["try"])
        with database.transaction() as connection:
            reserved = try_branch(
                connection,
                key,
                action.name,
                lambda: action.reserve(connection, request, timestamp()),  # type: ignore[arg-type]
            )
        faults.after(points["try"])
        return BranchAnswer(
            action=action.name,
            xid=key.xid,
            branch_id=key.branch_id,
            fence=FenceStatus.TRIED,
            outcome=PhaseTwoOutcome.DONE,
            result=reserved.model_dump(mode="json"),
        )

    # FastAPI reads the body model from the annotation: each action's try takes its own arguments.
    try_.__annotations__["request"] = action.arguments
    router.add_api_route(f"/{action.name}/try", in_worker_thread(try_), methods=["POST"], summary=f"try {action.name}")

    def confirm(request: BranchRequest) -> BranchAnswer:
        key = BranchKey(request.xid, request.branch_id)
        faults.before(points["confirm"])
        with database.transaction() as connection:
            fence, outcome = confirm_branch(
                connection, key, action.name, lambda: action.apply(connection, key.xid, key.branch_id)
            )
        faults.after(points["confirm"])
        return BranchAnswer(action=action.name, xid=key.xid, branch_id=key.branch_id, fence=fence, outcome=outcome)

    router.add_api_route(
        f"/{action.name}/confirm", in_worker_thread(confirm), methods=["POST"], summary=f"confirm {action.name}"
    )

    def cancel(request: BranchRequest) -> BranchAnswer:
        key = BranchKey(request.xid, request.branch_id)
        faults.before(points["cancel"])
        with database.transaction() as connection:
            fence, outcome = cancel_branch(
                connection, key, action.name, lambda: action.release(connection, key.xid, key.branch_id)
            )
        faults.after(points["cancel"])
        return BranchAnswer(action=action.name, xid=key.xid, branch_id=key.branch_id, fence=fence, outcome=outcome)

    router.add_api_route(
        f"/{action.name}/cancel", in_worker_thread(cancel), methods=["POST"], summary=f"cancel {action.name}"
    )
