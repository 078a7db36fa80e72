"""HTTP clients the storefront uses to call the stock and balance services.

Calls go to a base URL such as ``http://stock``, over :mod:`bookstore.transport`: in a pod, cluster
DNS and kube-proxy's rules take them to one of the Service's pods (through ``HTTP_PROXY``, the
cluster's service proxy, where the environment names one). Each call carries the current trace
context. Failures become the bookstore's errors, naming the dependency: a refusal the service gave
(unknown book, too little money ...) is re-raised as itself; no answer is
:class:`DependencyUnavailable` (503) or :class:`DependencyTimeout` (504); an error or nonsense in
reply is :class:`BadGateway` (502).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bookstore.errors import BadGateway, DependencyTimeout, DependencyUnavailable, error_from_payload
from bookstore.models import (
    Account,
    Book,
    BookList,
    FreezeMoney,
    NewUser,
    Order,
    OrderRequest,
    OwnedBooks,
    Payment,
    PaymentRequest,
    ReserveStock,
)
from bookstore.tracing import outgoing_headers
from bookstore.transport import ServiceHttp
from bookstore.txn.participant import BranchAnswer

__all__ = ["BalanceClient", "ServiceClient", "StockClient"]

_Model = TypeVar("_Model", bound=BaseModel)


class ServiceClient:
    """Calls one dependency and turns every way it can fail into a :class:`~bookstore.errors.BookstoreError`."""

    def __init__(
        self, name: str, base_url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.name = name
        self.base_url = base_url
        self._http = ServiceHttp(base_url=base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, model: type[_Model], method: str, path: str, body: BaseModel | None = None) -> _Model:
        """``method path`` with ``body`` as JSON; the answer parsed as ``model``.

        Both ways pydantic's own JSON (de)serialiser does the work, without a dict in between.
        """
        what = f"{method} {self.base_url}{path}"
        headers = outgoing_headers()
        content = None
        if body is not None:
            content = body.model_dump_json().encode()
            headers["content-type"] = "application/json"
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise DependencyTimeout(self.name, f"{self.name} did not answer in time ({what})") from exc
        except httpx.TransportError as exc:
            raise DependencyUnavailable(self.name, f"cannot reach {self.name} ({what}): {exc}") from exc
        if response.is_success:
            try:
                return model.model_validate_json(response.content)
            except ValidationError as exc:
                raise BadGateway(self.name, f"{self.name} gave an unexpected answer to {what}") from exc
        payload = _json_or_none(response)
        refusal = error_from_payload(payload) if response.is_client_error else None
        if refusal is not None:
            refusal.detail.setdefault("refused_by", self.name)  # the caller learns who decided
            raise refusal
        status = response.status_code
        message = f"{self.name} answered {status} to {what}"
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            message += f": {payload['message']}"
        if status == httpx.codes.SERVICE_UNAVAILABLE:
            raise DependencyUnavailable(self.name, message, status=status)
        if status == httpx.codes.GATEWAY_TIMEOUT:
            raise DependencyTimeout(self.name, message, status=status)
        raise BadGateway(self.name, message, status=status)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class StockClient(ServiceClient):
    """The stock service: books, stock and orders."""

    def __init__(self, base_url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("stock", base_url, timeout=timeout, transport=transport)

    async def list_books(self) -> list[Book]:
        return (await self.call(BookList, "GET", "/api/books")).books

    async def get_book(self, book_id: str) -> Book:
        return await self.call(Book, "GET", f"/api/books/{book_id}")

    async def place_order(self, order: OrderRequest) -> Order:
        return await self.call(Order, "POST", "/api/orders", order)

    async def books_owned(self, user: str) -> OwnedBooks:
        return await self.call(OwnedBooks, "GET", f"/api/users/{user}/books")

    async def reserve(self, reservation: ReserveStock) -> BranchAnswer:
        """TCC try of a purchase's stock branch: hold the copies."""
        return await self.call(BranchAnswer, "POST", "/txn/reserve-stock/try", reservation)


class BalanceClient(ServiceClient):
    """The balance service: accounts and payments."""

    def __init__(self, base_url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("balance", base_url, timeout=timeout, transport=transport)

    async def create_user(self, name: str) -> Account:
        return await self.call(Account, "POST", "/api/users", NewUser(name=name))

    async def get_account(self, name: str) -> Account:
        return await self.call(Account, "GET", f"/api/users/{name}")

    async def pay(self, payment: PaymentRequest) -> Payment:
        return await self.call(Payment, "POST", "/api/payments", payment)

    async def refund(self, payment_id: str) -> Payment:
        return await self.call(Payment, "POST", f"/api/payments/{payment_id}/refund")

    async def freeze(self, frozen: FreezeMoney) -> BranchAnswer:
        """TCC try of a purchase's balance branch: hold the money."""
        return await self.call(BranchAnswer, "POST", "/txn/freeze-money/try", frozen)
