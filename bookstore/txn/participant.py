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
Held = TypeVar("Held", bound=BaseModel)


@dataclass(frozen=True)
class TccAction(Generic[Arguments, Held]):
    """One TCC action a participant offers, as functions on a connection inside its transaction.

    ``service`` names the fault points (``stock`` → ``stock.try`` ...). A try's ``arguments`` (with
    the time, as ``created_at``) make the ``held`` record that ``reserve`` keeps; ``apply`` and
    ``release`` get the branch's xid and id.
    """

    name: str
    service: str
    arguments: type[Arguments]
    held: type[Held]
    reserve: Callable[[sqlite3.Connection, Held], Held]
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


def create_participant_router(database: Database, actions: list[TccAction[Any, Any]]) -> APIRouter:
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


def _add_action(router: APIRouter, database: Database, action: TccAction[Arguments, Held]) -> None:
    # Each route's body runs in a worker thread, so SQLite never blocks the event loop.
    try_point = faults.FaultPoint(f"{action.service}.try")

    def try_(request: BranchRequest) -> BranchAnswer:
        key = BranchKey(request.xid, request.branch_id)
        faults.before(try_point)
        with database.transaction() as connection:
            reserved = try_branch(
                connection,
                key,
                action.name,
                lambda: action.reserve(connection, action.held(created_at=timestamp(), **request.model_dump())),
            )
        faults.after(try_point)
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
    _add_phase_two(router, database, action, "confirm", confirm_branch, action.apply)
    _add_phase_two(router, database, action, "cancel", cancel_branch, action.release)


PhaseTwoStep = Callable[[sqlite3.Connection, BranchKey, str, Callable[[], object]], tuple[FenceStatus, PhaseTwoOutcome]]


def _add_phase_two(
    router: APIRouter,
    database: Database,
    action: TccAction[Any, Any],
    phase: str,
    fenced: PhaseTwoStep,
    work: Callable[[sqlite3.Connection, str, int], object],
) -> None:
    """The route of ``phase`` (confirm or cancel): ``work`` on the branch, as its fence (``fenced``) lets it."""
    point = faults.FaultPoint(f"{action.service}.{phase}")

    def phase_two(request: BranchRequest) -> BranchAnswer:
        key = BranchKey(request.xid, request.branch_id)
        faults.before(point)
        with database.transaction() as connection:
            fence, outcome = fenced(connection, key, action.name, lambda: work(connection, key.xid, key.branch_id))
        faults.after(point)
        return BranchAnswer(action=action.name, xid=key.xid, branch_id=key.branch_id, fence=fence, outcome=outcome)

    router.add_api_route(
        f"/{action.name}/{phase}", in_worker_thread(phase_two), methods=["POST"], summary=f"{phase} {action.name}"
    )
