"""``tc``, the transaction coordinator (Seata's TC): global transactions, their branches and phase two.

=====  ========================================  =============================================
POST   ``/api/transactions``                     begin (``{"name", "timeout_seconds",
                                                 "idempotency_key", "application_data",
                                                 "branches"}``); 201, or 200 with the first
                                                 transaction for a known idempotency key
GET    ``/api/transactions``                     the newest, and the count per status
                                                 (``?status=``, ``?name=``, ``?limit=``)
GET    ``/api/transactions/{xid}``               one, with its branches and its log
POST   ``/api/transactions/{xid}/branches``      register a branch (``{"resource", "action",
                                                 "url"}``); 409 once the transaction is decided
POST   ``/api/transactions/{xid}/commit``        decide to commit, and drive phase two
POST   ``/api/transactions/{xid}/rollback``      decide to roll back, and drive phase two
GET    ``/api/events``                           the log, oldest first (``?after=<id>``)
=====  ========================================  =============================================

A decision answers as soon as it is in the log (``committing`` / ``rollbacking``); phase two then
runs in the background, telling each branch until it has answered, as Seata's TC commits
asynchronously: the outcome is fixed once logged, and waiting for the confirms would only double
the purchase's latency (its profile: each call costs about a monolith purchase). For a moment
after a purchase the copies show as ``reserved`` and the money as ``frozen``. Its database
(``tc.sqlite3``) is the transaction log: keep it on a volume that outlives the pod.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from anyio import to_thread
from fastapi import FastAPI, Path, Query, Response, status

from bookstore.db import Database
from bookstore.models import ORDER_ID_PATTERN
from bookstore.settings import Settings
from bookstore.transport import ServiceHttp
from bookstore.txn import faults
from bookstore.txn.coordinator import Coordinator
from bookstore.txn.log import NewTransaction, TransactionLog, create_schema
from bookstore.txn.protocol import (
    BeginRequest,
    BranchSpec,
    BranchView,
    DecisionRequest,
    EventList,
    GlobalStatus,
    GlobalTransactionView,
    TransactionList,
)
from bookstore.web import create_service_app

__all__ = ["create_app"]

XidPath = Annotated[str, Path(pattern=ORDER_ID_PATTERN)]


def create_app(settings: Settings, *, http: ServiceHttp | None = None) -> FastAPI:
    """The coordinator's ASGI app: its log opens, and its watcher starts (recovering), at start-up.

    ``http`` replaces the client phase two calls participants with (e.g. to reach apps in the same
    process); the app closes it when it shuts down either way.
    """
    database = Database(settings.database_path, [create_schema])
    log = TransactionLog(database)
    http = http or ServiceHttp(timeout=settings.http_timeout)
    coordinator = Coordinator(log, http)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database.lifespan(app):
            await coordinator.start()
            try:
                yield
            finally:
                await coordinator.stop()
                await http.aclose()

    app = create_service_app(settings, title="Bookstore transaction coordinator (tc)", lifespan=lifespan)
    app.state.coordinator = coordinator

    @app.post("/api/transactions", status_code=status.HTTP_201_CREATED, tags=["tc"])
    async def begin(request: BeginRequest, response: Response) -> GlobalTransactionView:
        """Begin a global transaction (with its first branches); a repeated idempotency key answers the first."""
        new = NewTransaction(
            name=request.name,
            timeout_seconds=request.timeout_seconds or settings.txn_timeout,
            idempotency_key=request.idempotency_key,
            application_data=request.application_data,
            faults=faults.current_plan().header,
            branches=tuple(request.branches),
        )
        began = await to_thread.run_sync(log.begin, new)
        if not began.created:
            response.status_code = status.HTTP_200_OK
        return began

    @app.get("/api/transactions", tags=["tc"])
    async def list_transactions(
        status: GlobalStatus | None = None,
        name: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> TransactionList:
        counts, newest = await to_thread.run_sync(lambda: log.newest(status=status, name=name, limit=limit))
        return TransactionList(counts=counts, transactions=newest)

    @app.get("/api/transactions/{xid}", tags=["tc"])
    async def get_transaction(xid: XidPath) -> GlobalTransactionView:
        return await to_thread.run_sync(log.get, xid)

    @app.post("/api/transactions/{xid}/branches", status_code=status.HTTP_201_CREATED, tags=["tc"])
    async def register(xid: XidPath, spec: BranchSpec) -> BranchView:
        return await to_thread.run_sync(log.register, xid, spec)

    async def decide(xid: str, *, commit: bool, request: DecisionRequest) -> GlobalTransactionView:
        decided = await to_thread.run_sync(lambda: log.decide(xid, commit=commit, outcome=request.outcome))
        if decided.status.finished:
            return decided
        faults.before(faults.FaultPoint.TC_BEFORE_PHASE_TWO)
        coordinator.drive(xid)
        faults.after(faults.FaultPoint.TC_BEFORE_PHASE_TWO)
        return decided

    @app.post("/api/transactions/{xid}/commit", tags=["tc"])
    async def commit(xid: XidPath, request: DecisionRequest) -> GlobalTransactionView:
        """Decide to commit: every branch is then confirmed (retried until it answers)."""
        return await decide(xid, commit=True, request=request)

    @app.post("/api/transactions/{xid}/rollback", tags=["tc"])
    async def rollback(xid: XidPath, request: DecisionRequest) -> GlobalTransactionView:
        """Decide to roll back: every branch is then cancelled (a branch never tried is cancelled empty)."""
        return await decide(xid, commit=False, request=request)

    @app.get("/api/events", tags=["tc"])
    async def events(
        after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> EventList:
        """The transaction log, oldest first; pass the last id seen as ``after`` to follow it."""
        return EventList(events=await to_thread.run_sync(lambda: log.events(after=after, limit=limit)))

    return app


if __name__ == "__main__":
    from bookstore.serve import main

    main("tc", create_app)
