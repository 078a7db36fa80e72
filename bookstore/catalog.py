"""The books the store sells and the amounts every account and shelf starts with.

Money is an ``int`` count of fen (CNY minor units, 1 yuan = 100 fen) everywhere, in the
databases and in the JSON API, the way payment APIs such as Stripe carry amounts: sums and
products stay exact, which the workshop's invariants depend on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATALOG",
    "CURRENCY",
    "FEN_PER_YUAN",
    "INITIAL_BALANCE",
    "INITIAL_STOCK",
    "MAX_PURCHASE_COUNT",
    "CatalogBook",
    "format_money",
]

CURRENCY = "CNY"
FEN_PER_YUAN = 100
INITIAL_STOCK = 10_000
INITIAL_BALANCE = 1_000_000 * FEN_PER_YUAN
# One purchase can never take more than a whole shelf, so larger counts are bad input, not a stock refusal.
MAX_PURCHASE_COUNT = INITIAL_STOCK


@dataclass(frozen=True)
class CatalogBook:
    """A book as first put on the shelf: its id, title and price in fen."""

    id: str
    title: str
    price: int


CATALOG: tuple[CatalogBook, ...] = (
    CatalogBook("00001", "未来架构", 99 * FEN_PER_YUAN),
    CatalogBook("00002", "Cloud Native Go", 69 * FEN_PER_YUAN),
    CatalogBook("00003", "云原生Java", 128 * FEN_PER_YUAN),
    CatalogBook("00004", "Python云原生", 89 * FEN_PER_YUAN),
    CatalogBook("00005", "深入浅出Istio", 79 * FEN_PER_YUAN),
)


def format_money(fen: int) -> str:
    """Render an amount for people, e.g. ``9900`` → ``¥99.00``."""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{yuan:,}.{cents:02d}"
