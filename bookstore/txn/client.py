"""The coordinator's client, for a TM (the storefront): begin, register, commit, rollback, status.

    tc = CoordinatorClient("http://tc", timeout=5)
    gtx = await tc.begin("purchase", branches=[BranchSpec(resource="stock", action="reserve-stock", url=...)])
    async with gtx:                 # leaves by committing, or by rolling back if the block raised
        ...                         # call each branch's try with gtx.xid and its branch id
        gtx.outcome = {...}         # kept with the decision (a repeated idempotency key gets it back)

A block that raises a :class:`~bookstore.errors.BookstoreError` rolls back with that refusal as the
outcome, and the refusal goes on to the caller. A commit the coordinator refuses (the transaction
timed out in the meantime) becomes :class:`~bookstore.errors.TransactionRolledBack`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx

from bookstore.errors import BookstoreError, DependencyError, TransactionNotActive, TransactionRolledBack
from bookstore.services.clients import ServiceClient
from bookstore.txn.protocol import (
    BeginRequest,
    BranchSpec,
    BranchView,
    DecisionRequest,
    GlobalTransactionView,
)

__all__ = ["CoordinatorClient", "GlobalTransaction"]

_log = logging.getLogger("bookstore.txn")


class CoordinatorClient(ServiceClient):
    """Calls ``tc``; every failure is a :class:`~bookstore.errors.BookstoreError` naming it (see ServiceClient)."""

    def __init__(self, base_url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("tc", base_url, timeout=timeout, transport=transport)

    async def begin(
        self,
        name: str,
        *,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        application_data: dict[str, Any] | None = None,
        branches: Sequence[BranchSpec] = (),
    ) -> GlobalTransaction:
        request = BeginRequest(
            name=name,
            timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
            application_data=application_data,
            branches=list(branches),
        )
        return GlobalTransaction(self, await self.call(GlobalTransactionView, "POST", "/api/transactions", request))

    async def register(self, xid: str, branch: BranchSpec) -> BranchView:
        return await self.call(BranchView, "POST", f"/api/transactions/{xid}/branches", branch)

    async def commit(self, xid: str, outcome: dict[str, Any] | None = None) -> GlobalTransactionView:
        body = DecisionRequest(outcome=outcome)
        return await self.call(GlobalTransactionView, "POST", f"/api/transactions/{xid}/commit", body)

    async def rollback(self, xid: str, outcome: dict[str, Any] | None = None) -> GlobalTransactionView:
        body = DecisionRequest(outcome=outcome)
        return await self.call(GlobalTransactionView, "POST", f"/api/transactions/{xid}/rollback", body)

    async def status(self, xid: str) -> GlobalTransactionView:
        return await self.call(GlobalTransactionView, "GET", f"/api/transactions/{xid}")


class GlobalTransaction:
    """One global transaction as its TM holds it; ``async with`` commits or rolls it back on leaving."""

    def __init__(self, coordinator: CoordinatorClient, view: GlobalTransactionView) -> None:
        self.coordinator = coordinator
        self.view = view
        #: What to keep with a commit (the TM's answer to its caller), set inside the block.
        self.outcome: dict[str, Any] | None = None

    @property
    def xid(self) -> str:
        return self.view.xid

    @property
    def created(self) -> bool:
        """False when ``begin`` found the transaction of the same idempotency key instead of starting one."""
        return self.view.created

    def branch_id(self, resource: str) -> int:
        """The id the coordinator gave the branch of ``resource``."""
        return next(branch.branch_id for branch in self.view.branches if branch.resource == resource)

    async def __aenter__(self) -> GlobalTransaction:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is None:
            try:
                self.view = await self.coordinator.commit(self.xid, self.outcome)
            except TransactionNotActive as refused:
                raise TransactionRolledBack(
                    f"the purchase was rolled back before it could commit ({refused.message})", xid=self.xid
                ) from refused
            return
        refusal = error.to_payload() if isinstance(error, BookstoreError) else None
        try:
            self.view = await self.coordinator.rollback(self.xid, refusal)
        except DependencyError as unreachable:
            # The block's own error is the one to report; the coordinator's timeout rolls the transaction back.
            _log.warning("could not ask tc to roll back %s (%s): its timeout will", self.xid, unreachable.message)
