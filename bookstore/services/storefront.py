"""The storefront: the public API and page, with no data of its own; stock and balance keep it.

The whole purchase flow lives in :meth:`StorefrontShop.purchase`, the one place lab 03 changes
when it brings in a transaction coordinator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bookstore.errors import BookstoreError, DependencyError, InsufficientStock
from bookstore.models import Book, Order, OrderRequest, PaymentRequest, PurchaseRequest, User, new_order_id
from bookstore.public_api import create_public_app
from bookstore.services.clients import BalanceClient, StockClient
from bookstore.settings import Settings

__all__ = ["StorefrontShop", "create_app"]


class StorefrontShop:
    """A :class:`~bookstore.public_api.Shop` that keeps nothing itself and asks stock and balance."""

    def __init__(self, stock: StockClient, balance: BalanceClient) -> None:
        self.stock = stock
        self.balance = balance

    async def list_books(self) -> list[Book]:
        return await self.stock.list_books()

    async def create_user(self, name: str) -> User:
        account = await self.balance.create_user(name)
        return User(name=account.name, balance=account.balance, books=[])

    async def get_user(self, name: str) -> User:
        account = await self.balance.get_account(name)
        owned = await self.stock.books_owned(name)
        return User(name=account.name, balance=account.balance, books=owned.books)

    async def purchase(self, request: PurchaseRequest) -> Order:
        """Buy books across two services, without a distributed transaction.

        1. Ask stock for the book: an unknown book or too few copies is refused before money moves.
        2. Take the money from balance, keyed by a new order id: an unknown user or too little
           money is refused there, and nothing has moved yet.
        3. Place the order at stock, which takes the copies. If stock refuses now (another buyer
           took the last copies in between), give the money back and pass the refusal on.

        When nothing fails, stock and money move together. When stock cannot be reached or does
        not answer in step 3, the money stays taken and the order may or may not exist: a plain
        refund could be just as wrong, which is why lab 03 replaces steps 2 and 3 with TCC.
        """
        book = await self.stock.get_book(request.book)
        if book.stock < request.count:
            raise InsufficientStock(
                f"only {book.stock} copies of {book.title!r} are left, cannot sell {request.count}",
                book=book.id,
                stock=book.stock,
                requested=request.count,
            )
        order_id = new_order_id()
        payment = PaymentRequest(id=order_id, user=request.user, amount=book.price * request.count)
        await self.balance.pay(payment)
        try:
            return await self.stock.place_order(
                OrderRequest(id=order_id, user=request.user, book=request.book, count=request.count)
            )
        except DependencyError:
            raise
        except BookstoreError:
            await self.balance.refund(order_id)
            raise


def create_app(
    settings: Settings, *, stock: StockClient | None = None, balance: BalanceClient | None = None
) -> FastAPI:
    """The storefront's ASGI app, calling stock and balance at the URLs in ``settings``.

    ``stock`` and ``balance`` replace the clients built from the settings (e.g. to call apps in
    the same process); the app closes them when it shuts down either way.
    """
    stock = stock or StockClient(settings.stock_url, timeout=settings.http_timeout)
    balance = balance or BalanceClient(settings.balance_url, timeout=settings.http_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await stock.aclose()
            await balance.aclose()

    shop = StorefrontShop(stock, balance)
    return create_public_app(settings, shop, title="Bookstore storefront", lifespan=lifespan)


if __name__ == "__main__":
    from bookstore.serve import main

    main("storefront", create_app)
