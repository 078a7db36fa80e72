"""The storefront: the public API and page, with no data of its own; stock and balance keep it.

The whole purchase flow lives in :meth:`StorefrontShop.purchase`: lab 02's calls one after the
other, or, once ``BOOKSTORE_TC_URL`` names a coordinator (lab 03), a global transaction with a TCC
branch at stock and one at balance.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bookstore.errors import (
    BookstoreError,
    DependencyError,
    InvalidRequest,
    PurchaseInProgress,
    TransactionRolledBack,
    error_from_payload,
)
from bookstore.models import (
    Book,
    FreezeMoney,
    Order,
    OrderRequest,
    PaymentRequest,
    PurchaseRequest,
    ReserveStock,
    User,
    new_order_id,
)
from bookstore.public_api import IDEMPOTENCY_HEADER, create_public_app
from bookstore.services.clients import BalanceClient, StockClient
from bookstore.settings import Settings
from bookstore.txn import faults
from bookstore.txn.client import CoordinatorClient
from bookstore.txn.participant import BranchAnswer
from bookstore.txn.protocol import BranchSpec, GlobalTransactionView

#: The TCC actions of a purchase's branches (bookstore.services.stock and .balance offer them).
RESERVE_STOCK = "reserve-stock"
FREEZE_MONEY = "freeze-money"

__all__ = ["StorefrontShop", "create_app"]


class StorefrontShop:
    """A :class:`~bookstore.public_api.Shop` that keeps nothing itself and asks stock and balance.

    With a ``coordinator`` (lab 03) every purchase is a global transaction whose branches are TCC
    actions at stock and balance; without one it is lab 02's sequence of calls, which a fault between
    them leaves half done.
    """

    def __init__(
        self,
        stock: StockClient,
        balance: BalanceClient,
        coordinator: CoordinatorClient | None = None,
        *,
        txn_timeout: float = 60.0,
    ) -> None:
        self.stock = stock
        self.balance = balance
        self.coordinator = coordinator
        self.txn_timeout = txn_timeout
        self._prices: dict[str, int] = {}

    async def list_books(self) -> list[Book]:
        return await self.stock.list_books()

    async def create_user(self, name: str) -> User:
        account = await self.balance.create_user(name)
        return User(name=account.name, balance=account.balance, books=[])

    async def get_user(self, name: str) -> User:
        account, owned = await asyncio.gather(self.balance.get_account(name), self.stock.books_owned(name))
        return User(name=account.name, balance=account.balance, frozen=account.frozen, books=owned.books)

    async def purchase(self, request: PurchaseRequest, idempotency_key: str | None = None) -> Order:
        """Buy books: in a global transaction when there is a coordinator, else lab 02's way."""
        if self.coordinator is not None:
            return await self._purchase_in_global_transaction(self.coordinator, request, idempotency_key)
        if idempotency_key is not None:
            raise InvalidRequest(
                "Idempotency-Key needs the transaction coordinator: set BOOKSTORE_TC_URL on the storefront",
                header=IDEMPOTENCY_HEADER,
            )
        return await self._purchase_without_transaction(request)

    async def _purchase_without_transaction(self, request: PurchaseRequest) -> Order:
        """Buy books across two services, without a distributed transaction (lab 02).

        1. Know the book's price (asked of stock once per book): an unknown book is refused before
           any money moves.
        2. Take the money from balance, keyed by a new order id: an unknown user or too little
           money is refused there, and nothing has moved yet.
        3. Place the order at stock, which takes the copies. If stock refuses (too few copies left),
           give the money back and pass the refusal on.

        When nothing fails, stock and money move together. When stock cannot be reached or does
        not answer in step 3 (or the fault ``storefront.after-payment`` strikes), the money stays
        taken and the order may or may not exist: a plain refund could be just as wrong, which is
        why lab 03 replaces steps 2 and 3 with TCC.
        """
        price = await self._price(request.book)
        order_id = new_order_id()
        await self.balance.pay(PaymentRequest(id=order_id, user=request.user, amount=price * request.count))
        faults.before(faults.FaultPoint.STOREFRONT_AFTER_PAYMENT)
        try:
            return await self.stock.place_order(
                OrderRequest(id=order_id, user=request.user, book=request.book, count=request.count)
            )
        except DependencyError:
            raise
        except BookstoreError:
            await self.balance.refund(order_id)
            raise

    async def _purchase_in_global_transaction(
        self, coordinator: CoordinatorClient, request: PurchaseRequest, idempotency_key: str | None
    ) -> Order:
        """Buy books in a global transaction: TCC tries at stock and balance together, then one decision.

        1. Begin at ``tc`` with both branches registered (one call), and what was asked for; a known
           ``Idempotency-Key`` finds the first purchase's transaction instead, and its outcome is
           answered again (never a second charge).
        2. Try both branches at once: stock reserves the copies, balance freezes the money.
        3. Both held: commit (``tc`` confirms both, retrying until each answers). A refusal or a
           failure: roll back (``tc`` cancels both; a branch never tried is cancelled empty, and its
           late try refused). A crash in between: ``tc`` rolls back at the global timeout.
        """
        price = await self._price(request.book)
        asked = request.model_dump(mode="json")
        gtx = await coordinator.begin(
            "purchase",
            timeout_seconds=self.txn_timeout,
            idempotency_key=f"{request.user}:{idempotency_key}" if idempotency_key is not None else None,
            application_data={"request": asked},
            branches=[
                BranchSpec(resource="stock", action=RESERVE_STOCK, url=self.stock.base_url),
                BranchSpec(resource="balance", action=FREEZE_MONEY, url=self.balance.base_url),
            ],
        )
        if not gtx.created:
            return self._replay(gtx.view, asked)
        order_id = new_order_id()
        async with gtx:
            stock_try = self.stock.reserve(
                ReserveStock(
                    xid=gtx.xid,
                    branch_id=gtx.branch_id("stock"),
                    order_id=order_id,
                    user=request.user,
                    book=request.book,
                    count=request.count,
                    price=price,
                )
            )
            balance_try = self.balance.freeze(
                FreezeMoney(
                    xid=gtx.xid,
                    branch_id=gtx.branch_id("balance"),
                    order_id=order_id,
                    user=request.user,
                    amount=price * request.count,
                )
            )
            reserved, frozen = await asyncio.gather(stock_try, balance_try, return_exceptions=True)
            for outcome in (reserved, frozen):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(reserved, BranchAnswer) and reserved.result is not None
            order = Order(
                id=order_id,
                user=request.user,
                book=request.book,
                count=request.count,
                price=price,
                amount=price * request.count,
                created_at=reserved.result["created_at"],
            )
            faults.before(faults.FaultPoint.STOREFRONT_AFTER_TRY)
            gtx.outcome = {"order": order.model_dump(mode="json")}
        faults.after(faults.FaultPoint.STOREFRONT_AFTER_TRY)
        return order

    def _replay(self, first: GlobalTransactionView, asked: dict[str, object]) -> Order:
        """The answer the first purchase with this Idempotency-Key got (or will get)."""
        if (first.application_data or {}).get("request") != asked:
            raise InvalidRequest(
                f"this {IDEMPOTENCY_HEADER} was used for another purchase: use a new key for a new purchase",
                header=IDEMPOTENCY_HEADER,
            )
        if not first.status.decided:
            raise PurchaseInProgress(
                "the purchase with this key is still being decided: ask again in a moment with the same key",
                xid=first.xid,
            )
        outcome = first.outcome or {}
        if first.status.commits and "order" in outcome:
            return Order.model_validate(outcome["order"])
        refusal = error_from_payload(outcome)
        if refusal is not None:
            raise refusal
        raise TransactionRolledBack(f"the purchase with this key was rolled back ({first.status})", xid=first.xid)

    async def _price(self, book_id: str) -> int:
        """The book's price, asked of stock once per book: the catalogue's prices are fixed, and a call
        saved on every purchase is a third of lab 02's (the profile: each hop costs about as much as the
        monolith's whole purchase). Stock refuses a reservation at any other price, and an order's
        amount is stock's own, so a stale copy could never charge wrongly unnoticed.
        """
        if book_id not in self._prices:
            self._prices[book_id] = (await self.stock.get_book(book_id)).price
        return self._prices[book_id]


def create_app(
    settings: Settings,
    *,
    stock: StockClient | None = None,
    balance: BalanceClient | None = None,
    coordinator: CoordinatorClient | None = None,
) -> FastAPI:
    """The storefront's ASGI app, calling stock, balance (and tc, when set) at the URLs in ``settings``.

    ``stock``, ``balance`` and ``coordinator`` replace the clients built from the settings (e.g. to
    call apps in the same process); the app closes them when it shuts down either way.
    """
    stock = stock or StockClient(settings.stock_url, timeout=settings.http_timeout)
    balance = balance or BalanceClient(settings.balance_url, timeout=settings.http_timeout)
    if coordinator is None and settings.tc_url is not None:
        coordinator = CoordinatorClient(settings.tc_url, timeout=settings.http_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for client in (stock, balance, coordinator):
                if client is not None:
                    await client.aclose()

    shop = StorefrontShop(stock, balance, coordinator, txn_timeout=settings.txn_timeout)
    return create_public_app(settings, shop, title="Bookstore storefront", lifespan=lifespan)


if __name__ == "__main__":
    from bookstore.serve import main

    main("storefront", create_app)
