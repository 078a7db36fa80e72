"""The monolith's shop: books, accounts and orders in one SQLite database, each purchase one transaction."""

from __future__ import annotations

from anyio import to_thread
from fastapi import FastAPI

from bookstore import accounts, inventory
from bookstore.db import Database
from bookstore.errors import InvalidRequest
from bookstore.models import Book, Order, PurchaseRequest, User, new_order_id, timestamp
from bookstore.public_api import IDEMPOTENCY_HEADER, create_public_app
from bookstore.settings import Settings

__all__ = ["MonolithShop", "create_app"]


class MonolithShop:
    """A :class:`~bookstore.public_api.Shop` on one local database.

    SQLite calls run in worker threads so a slow disk never stalls the event loop.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def list_books(self) -> list[Book]:
        return await to_thread.run_sync(self._list_books)

    async def create_user(self, name: str) -> User:
        return await to_thread.run_sync(self._create_user, name)

    async def get_user(self, name: str) -> User:
        return await to_thread.run_sync(self._get_user, name)

    async def purchase(self, request: PurchaseRequest, idempotency_key: str | None = None) -> Order:
        if idempotency_key is not None:
            raise InvalidRequest(
                f"the monolith does not keep {IDEMPOTENCY_HEADER}s: one local transaction either happened or not, "
                "so look at the user's books before buying again",
                header=IDEMPOTENCY_HEADER,
            )
        return await to_thread.run_sync(self._purchase, request)

    def _list_books(self) -> list[Book]:
        with self.database.snapshot() as connection:
            return inventory.list_books(connection)

    def _create_user(self, name: str) -> User:
        with self.database.transaction() as connection:
            account = accounts.create_user(connection, name, timestamp())
        return User(name=account.name, balance=account.balance, books=[])

    def _get_user(self, name: str) -> User:
        with self.database.snapshot() as connection:
            account = accounts.get_account(connection, name)
            books = inventory.books_owned(connection, name)
        return User(name=account.name, balance=account.balance, books=books)

    def _purchase(self, request: PurchaseRequest) -> Order:
        # One transaction: a refusal at any step (unknown user or book, too little stock or money)
        # rolls back everything before it, so a refused purchase leaves no trace.
        with self.database.transaction() as connection:
            accounts.get_account(connection, request.user)
            order, _ = inventory.place_order(
                connection, new_order_id(), request.user, request.book, request.count, timestamp()
            )
            accounts.debit(connection, request.user, order.amount)
        return order


def create_app(settings: Settings) -> FastAPI:
    """The monolith's ASGI app; its database opens (and its schema is created) at start-up."""
    database = Database(settings.database_path, [inventory.create_schema, accounts.create_schema])

    return create_public_app(settings, MonolithShop(database), title="Bookstore monolith", lifespan=database.lifespan)
