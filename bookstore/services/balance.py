"""The balance service: users, their money and the payments taken for orders.

=====  ==============================  ===================================================
POST   ``/api/users``                  ``{"name"}``: open an account with the initial balance
GET    ``/api/users/{name}``           a user's balance
POST   ``/api/payments``               ``{"id", "user", "amount"}``: take money for order ``id``
                                       (201; the same payment again: 200, no change)
GET    ``/api/payments/{id}``          one payment
POST   ``/api/payments/{id}/refund``   give a payment's money back (once)
GET    ``/api/users/{name}/payments``  a user's payments, oldest first (refunded ones too)
GET    ``/api/frozen``                 money held by TCC tries not yet confirmed or cancelled
*      ``/txn/freeze-money/...``       the TCC participant (lab 03), see :mod:`bookstore.txn.participant`
=====  ==============================  ===================================================
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path, Response, status

from bookstore import accounts
from bookstore.db import Database
from bookstore.models import (
    ORDER_ID_PATTERN,
    Account,
    FreezeMoney,
    FrozenList,
    FrozenMoney,
    NewUser,
    Payment,
    PaymentList,
    PaymentRequest,
    UserName,
    timestamp,
)
from bookstore.settings import Settings
from bookstore.txn import fence
from bookstore.txn.participant import TccAction, create_participant_router
from bookstore.web import create_service_app, in_worker_thread

__all__ = ["FREEZE_MONEY", "create_app"]


#: The balance service's TCC action: freeze money, then take it (confirm) or give it back (cancel).
FREEZE_MONEY = TccAction(
    name="freeze-money",
    service="balance",
    arguments=FreezeMoney,
    held=FrozenMoney,
    reserve=accounts.freeze,
    apply=accounts.confirm_frozen,
    release=accounts.release_frozen,
)

PaymentId = Annotated[str, Path(pattern=ORDER_ID_PATTERN)]


def create_app(settings: Settings) -> FastAPI:
    """The balance service's ASGI app; its database opens (and its schema is created) at start-up."""
    database = Database(
        settings.database_path, [accounts.create_schema, accounts.create_payments_schema, fence.create_schema]
    )

    app = create_service_app(settings, title="Bookstore balance service", lifespan=database.lifespan)

    # Each route's body runs in a worker thread, so SQLite never blocks the event loop.
    @app.post("/api/users", status_code=status.HTTP_201_CREATED, tags=["balance"])
    @in_worker_thread
    def create_user(request: NewUser) -> Account:
        with database.transaction() as connection:
            return accounts.create_user(connection, request.name, timestamp())

    @app.get("/api/users/{name}", tags=["balance"])
    @in_worker_thread
    def get_account(name: Annotated[UserName, Path()]) -> Account:
        with database.snapshot() as connection:
            account = accounts.get_account(connection, name)
            return account.model_copy(update={"frozen": accounts.frozen_total(connection, name)})

    @app.post("/api/payments", status_code=status.HTTP_201_CREATED, tags=["balance"])
    @in_worker_thread
    def pay(request: PaymentRequest, response: Response) -> Payment:
        """Debit the user for an order; repeating a payment changes nothing."""
        with database.transaction() as connection:
            payment, created = accounts.pay(connection, request.id, request.user, request.amount, timestamp())
        if not created:
            response.status_code = status.HTTP_200_OK
        return payment

    @app.get("/api/payments/{payment_id}", tags=["balance"])
    @in_worker_thread
    def get_payment(payment_id: PaymentId) -> Payment:
        with database.snapshot() as connection:
            return accounts.get_payment(connection, payment_id)

    @app.post("/api/payments/{payment_id}/refund", tags=["balance"])
    @in_worker_thread
    def refund(payment_id: PaymentId) -> Payment:
        """Give the money back; refunding twice gives it back once."""
        with database.transaction() as connection:
            return accounts.refund(connection, payment_id, timestamp())

    @app.get("/api/users/{name}/payments", tags=["balance"])
    @in_worker_thread
    def list_payments(name: Annotated[UserName, Path()]) -> PaymentList:
        with database.snapshot() as connection:
            return PaymentList(payments=accounts.list_payments(connection, name))

    @app.get("/api/frozen", tags=["tcc"])
    @in_worker_thread
    def list_frozen() -> FrozenList:
        """Money TCC tries hold, oldest first: none at rest once every transaction is decided."""
        with database.snapshot() as connection:
            return FrozenList(frozen=accounts.list_frozen(connection))

    app.include_router(create_participant_router(database, [FREEZE_MONEY]))
    return app


if __name__ == "__main__":
    from bookstore.serve import main

    main("balance", create_app)
