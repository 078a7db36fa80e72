"""The bookstore's values, shared by the domain code and the HTTP APIs.

Request models are strict: a count must be a JSON integer (not ``"3"`` or ``true``), unknown
fields are refused, and every string has a bounded length, so bad input is a 422 at the door.
Money fields are integer fen (see :mod:`bookstore.catalog`).
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bookstore.catalog import MAX_PURCHASE_COUNT

__all__ = [
    "BOOK_ID_PATTERN",
    "ORDER_ID_PATTERN",
    "USER_NAME_PATTERN",
    "Account",
    "Book",
    "BookId",
    "BookList",
    "BranchRequest",
    "FreezeMoney",
    "FrozenList",
    "FrozenMoney",
    "NewUser",
    "Order",
    "OrderId",
    "OrderList",
    "OrderRequest",
    "OwnedBook",
    "OwnedBooks",
    "Payment",
    "PaymentList",
    "PaymentRequest",
    "PurchaseCount",
    "PurchaseRequest",
    "Ranking",
    "Reservation",
    "ReservationList",
    "ReserveStock",
    "User",
    "UserName",
    "new_order_id",
    "normalize_user_name",
    "timestamp",
]

# Letters and digits of any script (names like 小明 are welcome), then also '_', '.' and '-'. Starting
# with a letter or digit keeps names like '..' out, which a URL path would read as a step up.
USER_NAME_PATTERN = r"^\w[\w.-]{0,63}$"
BOOK_ID_PATTERN = r"^[0-9]{5}$"
ORDER_ID_PATTERN = r"^[0-9a-f]{32}$"


def normalize_user_name(name: str) -> str:
    """The one spelling of a name (Unicode NFKC), so look-alikes are one user.

    ``José`` typed as ``é`` or as ``e`` + a combining accent, or ``ａｄａ`` in full-width letters, would
    otherwise open separate accounts that nobody can tell apart on screen.
    """
    return unicodedata.normalize("NFKC", name)


def _normalized(value: object) -> object:
    return normalize_user_name(value) if isinstance(value, str) else value  # not a string: refused after this


#: A user name as it enters (body or path): normalised first, then held to the pattern and length.
UserName = Annotated[
    str,
    BeforeValidator(_normalized),
    Field(pattern=USER_NAME_PATTERN, min_length=1, max_length=64, examples=["alice"]),
]
BookId = Annotated[str, Field(pattern=BOOK_ID_PATTERN, examples=["00001"])]
OrderId = Annotated[str, Field(pattern=ORDER_ID_PATTERN, description="32 lowercase hex digits")]
PurchaseCount = Annotated[int, Field(ge=1, le=MAX_PURCHASE_COUNT, examples=[1])]
Fen = Annotated[int, Field(ge=0, description="integer fen (1 yuan = 100 fen)")]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class NewUser(_Request):
    """Body of ``POST /api/users``."""

    name: UserName


class PurchaseRequest(_Request):
    """Body of ``POST /api/purchase``: ``user`` buys ``count`` copies of ``book``."""

    user: UserName
    book: BookId
    count: PurchaseCount


class OrderRequest(_Request):
    """Body of the stock service's ``POST /api/orders``; ``id`` makes a retry harmless."""

    id: OrderId
    user: UserName
    book: BookId
    count: PurchaseCount


class PaymentRequest(_Request):
    """Body of the balance service's ``POST /api/payments``; ``id`` is the order paid for."""

    id: OrderId
    user: UserName
    amount: Annotated[int, Field(ge=1, le=2**53 - 1)]


class Book(_Value):
    """A book on the shelf: ``sold`` copies have left it, ``reserved`` are held by purchases not yet
    decided (lab 03's TCC tries) and ``stock`` remain."""

    id: str
    title: str
    price: Fen
    stock: int
    sold: int
    reserved: int = 0


class Ranking(_Value):
    """Which ranking module ordered a book list; ``error`` says why it fell back to catalog order."""

    module: str
    version: str
    error: str | None = None


class BookList(_Value):
    """Body of ``GET /api/books``."""

    books: list[Book]
    ranking: Ranking | None = None


class OwnedBook(_Value):
    id: str
    title: str
    count: int


class OwnedBooks(_Value):
    """The stock service's answer to which books a user has bought."""

    user: str
    books: list[OwnedBook]


class Account(_Value):
    """A user's money, as the balance service keeps it; ``frozen`` is held by purchases not yet decided."""

    name: str
    balance: Fen
    frozen: Fen = 0


class User(_Value):
    """Body of ``GET /api/users/{name}``: the account and the books bought."""

    name: str
    balance: Fen
    books: list[OwnedBook]
    frozen: Fen = 0


class Order(_Value):
    """A completed purchase."""

    id: str
    user: str
    book: str
    count: int
    price: Fen
    amount: Fen
    created_at: str


class Payment(_Value):
    """Money taken from ``user`` for order ``id``; ``refunded_at`` is set once it was given back."""

    id: str
    user: str
    amount: Fen
    created_at: str
    refunded_at: str | None = None


class BranchRequest(_Request):
    """Which branch of which global transaction a TCC call is for (the coordinator's ids)."""

    xid: Annotated[str, Field(pattern=ORDER_ID_PATTERN, description="the global transaction id")]
    branch_id: Annotated[int, Field(ge=1, le=2**53 - 1)]


class ReserveStock(BranchRequest):
    """The stock service's TCC try: hold ``count`` copies of ``book`` at ``price`` for order ``order_id``."""

    order_id: OrderId
    user: UserName
    book: BookId
    count: PurchaseCount
    price: Fen


class FreezeMoney(BranchRequest):
    """The balance service's TCC try: hold ``amount`` fen of ``user``'s money for order ``order_id``."""

    order_id: OrderId
    user: UserName
    amount: Annotated[int, Field(ge=1, le=2**53 - 1)]


class Reservation(_Value):
    """Copies a TCC try took off the shelf for order ``order_id``, until its confirm or cancel."""

    xid: str
    branch_id: int
    order_id: str
    user: str
    book: str
    count: int
    price: Fen
    created_at: str


class FrozenMoney(_Value):
    """Money a TCC try took from ``user`` for order ``order_id``, until its confirm or cancel."""

    xid: str
    branch_id: int
    order_id: str
    user: str
    amount: Fen
    created_at: str


class OrderList(_Value):
    orders: list[Order]


class PaymentList(_Value):
    payments: list[Payment]


class ReservationList(_Value):
    reservations: list[Reservation]


class FrozenList(_Value):
    frozen: list[FrozenMoney]


def new_order_id() -> str:
    """A fresh order id; the services also use it as the purchase's idempotency key."""
    return uuid.uuid4().hex


def timestamp() -> str:
    """Now, in UTC, as ISO 8601 with milliseconds (how every record's time is stored)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
