"""The stock service: books, their stock and the orders that took copies off the shelf.

=====  ==============================  ===================================================
GET    ``/api/books``                  every book with stock and copies sold, catalogue order
GET    ``/api/books/{id}``             one book
POST   ``/api/orders``                 ``{"id", "user", "book", "count"}``: take copies, record
                                       the order (201; the same order again: 200, no change)
GET    ``/api/orders/{id}``            one order
GET    ``/api/users/{name}/books``     the books a user has bought
GET    ``/api/users/{name}/orders``    a user's orders, oldest first
GET    ``/api/reservations``           copies held by TCC tries not yet confirmed or cancelled
*      ``/txn/reserve-stock/...``      the TCC participant (lab 03), see :mod:`bookstore.txn.participant`
=====  ==============================  ===================================================
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path, Response, status

from bookstore import inventory
from bookstore.db import Database
from bookstore.models import (
    BOOK_ID_PATTERN,
    ORDER_ID_PATTERN,
    Book,
    BookList,
    Order,
    OrderList,
    OrderRequest,
    OwnedBooks,
    Reservation,
    ReservationList,
    ReserveStock,
    UserName,
    timestamp,
)
from bookstore.settings import Settings
from bookstore.txn import fence
from bookstore.txn.participant import TccAction, create_participant_router
from bookstore.web import create_service_app, in_worker_thread

__all__ = ["RESERVE_STOCK", "create_app"]


#: The stock service's TCC action: reserve copies, then sell them (confirm) or put them back (cancel).
RESERVE_STOCK = TccAction(
    name="reserve-stock",
    service="stock",
    arguments=ReserveStock,
    held=Reservation,
    reserve=inventory.reserve,
    apply=inventory.confirm_reservation,
    release=inventory.release_reservation,
)


def create_app(settings: Settings) -> FastAPI:
    """The stock service's ASGI app; its database opens (and its schema is created) at start-up."""
    database = Database(settings.database_path, [inventory.create_schema, fence.create_schema])

    app = create_service_app(settings, title="Bookstore stock service", lifespan=database.lifespan)

    # Each route's body runs in a worker thread, so SQLite never blocks the event loop.
    @app.get("/api/books", tags=["stock"])
    @in_worker_thread
    def list_books() -> BookList:
        """Every book in catalogue order with price (fen), stock and copies sold."""
        with database.snapshot() as connection:
            return BookList(books=inventory.list_books(connection))

    @app.get("/api/books/{book_id}", tags=["stock"])
    @in_worker_thread
    def get_book(book_id: Annotated[str, Path(pattern=BOOK_ID_PATTERN)]) -> Book:
        with database.snapshot() as connection:
            return inventory.get_book(connection, book_id)

    @app.post("/api/orders", status_code=status.HTTP_201_CREATED, tags=["stock"])
    @in_worker_thread
    def place_order(request: OrderRequest, response: Response) -> Order:
        """Take ``count`` copies and record the order, atomically; repeating an order changes nothing."""
        with database.transaction() as connection:
            order, created = inventory.place_order(
                connection, request.id, request.user, request.book, request.count, timestamp()
            )
        if not created:
            response.status_code = status.HTTP_200_OK
        return order

    @app.get("/api/orders/{order_id}", tags=["stock"])
    @in_worker_thread
    def get_order(order_id: Annotated[str, Path(pattern=ORDER_ID_PATTERN)]) -> Order:
        with database.snapshot() as connection:
            return inventory.get_order(connection, order_id)

    @app.get("/api/users/{name}/books", tags=["stock"])
    @in_worker_thread
    def books_owned(name: Annotated[UserName, Path()]) -> OwnedBooks:
        with database.snapshot() as connection:
            return OwnedBooks(user=name, books=inventory.books_owned(connection, name))

    @app.get("/api/users/{name}/orders", tags=["stock"])
    @in_worker_thread
    def list_orders(name: Annotated[UserName, Path()]) -> OrderList:
        with database.snapshot() as connection:
            return OrderList(orders=inventory.list_orders(connection, name))

    @app.get("/api/reservations", tags=["tcc"])
    @in_worker_thread
    def list_reservations() -> ReservationList:
        """Copies TCC tries hold, oldest first: none at rest once every transaction is decided."""
        with database.snapshot() as connection:
            return ReservationList(reservations=inventory.list_reservations(connection))

    app.include_router(create_participant_router(database, [RESERVE_STOCK]))
    return app


if __name__ == "__main__":
    from bookstore.serve import main

    main("stock", create_app)
