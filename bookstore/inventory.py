"""Books, stock and orders: the rules of the shelf, on a SQLite connection inside a transaction.

The monolith and the stock service both keep their books with these functions; the caller owns
the transaction, so the monolith can put a purchase's stock and money moves in one.
"""

from __future__ import annotations

import sqlite3

from bookstore.catalog import CATALOG, INITIAL_STOCK, MAX_PURCHASE_COUNT
from bookstore.errors import InsufficientStock, InvalidRequest, OrderConflict, UnknownBook, UnknownOrder
from bookstore.models import Book, Order, OwnedBook

__all__ = ["books_owned", "create_schema", "get_book", "get_order", "list_books", "place_order"]

_BOOK_WITH_SALES = """
    SELECT b.id, b.title, b.price, b.stock, COALESCE(SUM(o.count), 0) AS sold
    FROM books AS b LEFT JOIN orders AS o ON o.book_id = b.id
"""


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the books and orders tables and put the catalogue on the shelf (once)."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS books (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            price INTEGER NOT NULL CHECK (price >= 0),
            stock INTEGER NOT NULL CHECK (stock >= 0)
        )"""
    )
    connection.execute(
        """CREATE TABLE IF NOT EXISTS orders (
            id TEXT PRIMARY KEY,
            user TEXT NOT NULL,
            book_id TEXT NOT NULL REFERENCES books (id),
            count INTEGER NOT NULL CHECK (count > 0),
            price INTEGER NOT NULL,
            amount INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )
    connection.execute("CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user, book_id)")
    connection.execute("CREATE INDEX IF NOT EXISTS orders_by_book ON orders (book_id)")
    connection.executemany(
        "INSERT OR IGNORE INTO books (id, title, price, stock) VALUES (?, ?, ?, ?)",
        [(book.id, book.title, book.price, INITIAL_STOCK) for book in CATALOG],
    )


def list_books(connection: sqlite3.Connection) -> list[Book]:
    """Every book in catalogue order, with its stock and the copies sold so far."""
    rows = connection.execute(f"{_BOOK_WITH_SALES} GROUP BY b.id ORDER BY b.id").fetchall()
    return [Book(**row) for row in rows]


def get_book(connection: sqlite3.Connection, book_id: str) -> Book:
    """One book, or :class:`UnknownBook`."""
    row = connection.execute(f"{_BOOK_WITH_SALES} WHERE b.id = ? GROUP BY b.id", (book_id,)).fetchone()
    if row is None:
        raise UnknownBook(f"there is no book {book_id!r}", book=book_id)
    return Book(**row)


def get_order(connection: sqlite3.Connection, order_id: str) -> Order:
    """One order, or :class:`UnknownOrder`."""
    order = _find_order(connection, order_id)
    if order is None:
        raise UnknownOrder(f"there is no order {order_id!r}", order=order_id)
    return order


def place_order(
    connection: sqlite3.Connection, order_id: str, user: str, book_id: str, count: int, now: str
) -> tuple[Order, bool]:
    """Take ``count`` copies off the shelf and record the order; returns it and whether it is new.

    Placing the same order id again with the same content returns the first order unchanged, so
    a caller may retry after a timeout without selling twice.
    """
    if not 1 <= count <= MAX_PURCHASE_COUNT:
        raise InvalidRequest(f"count must be between 1 and {MAX_PURCHASE_COUNT}, not {count}", count=count)
    existing = _find_order(connection, order_id)
    if existing is not None:
        if (existing.user, existing.book, existing.count) != (user, book_id, count):
            raise OrderConflict(f"order {order_id} already exists with other content", order=order_id)
        return existing, False
    book = get_book(connection, book_id)
    if book.stock < count:
        raise InsufficientStock(
            f"only {book.stock} copies of {book.title!r} are left, cannot sell {count}",
            book=book_id,
            stock=book.stock,
            requested=count,
        )
    connection.execute("UPDATE books SET stock = stock - ? WHERE id = ?", (count, book_id))
    order = Order(
        id=order_id,
        user=user,
        book=book_id,
        count=count,
        price=book.price,
        amount=book.price * count,
        created_at=now,
    )
    connection.execute(
        "INSERT INTO orders (id, user, book_id, count, price, amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (order.id, order.user, order.book, order.count, order.price, order.amount, order.created_at),
    )
    return order, True


def books_owned(connection: sqlite3.Connection, user: str) -> list[OwnedBook]:
    """The books ``user`` has bought, with how many copies of each, in catalogue order."""
    rows = connection.execute(
        """SELECT b.id, b.title, SUM(o.count) AS count
           FROM orders AS o JOIN books AS b ON b.id = o.book_id
           WHERE o.user = ? GROUP BY b.id ORDER BY b.id""",
        (user,),
    ).fetchall()
    return [OwnedBook(**row) for row in rows]


def _find_order(connection: sqlite3.Connection, order_id: str) -> Order | None:
    row = connection.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return None
    return Order(
        id=row["id"],
        user=row["user"],
        book=row["book_id"],
        count=row["count"],
        price=row["price"],
        amount=row["amount"],
        created_at=row["created_at"],
    )
