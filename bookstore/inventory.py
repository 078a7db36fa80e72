"""Books, stock and orders: the rules of the shelf, on a SQLite connection inside a transaction.

The monolith and the stock service both keep their books with these functions; the caller owns
the transaction, so the monolith can put a purchase's stock and money moves in one.

Reservations are the stock service's TCC branch (lab 03): a try takes copies off the shelf into a
reservation, a confirm turns the reservation into an order, a cancel puts the copies back. So at
every moment ``initial stock − stock == sold + reserved`` (the monolith never reserves).
"""

from __future__ import annotations

import sqlite3

from bookstore.catalog import CATALOG, INITIAL_STOCK, MAX_PURCHASE_COUNT
from bookstore.errors import InsufficientStock, InvalidRequest, OrderConflict, UnknownBook, UnknownOrder
from bookstore.models import Book, Order, OwnedBook, Reservation, normalize_user_name
from bookstore.txn.fence import BranchKey, pop_held

__all__ = [
    "books_owned",
    "confirm_reservation",
    "create_schema",
    "get_book",
    "get_order",
    "list_books",
    "list_orders",
    "list_reservations",
    "place_order",
    "release_reservation",
    "reserve",
]

#: The columns of an order and of a reservation, named as the models' fields.
_ORDER_COLUMNS = "id, user, book_id AS book, count, price, amount, created_at"
_RESERVATION_COLUMNS = "xid, branch_id, order_id, user, book_id AS book, count, price, created_at"
_BOOK_WITH_SALES = """
    SELECT b.id, b.title, b.price, b.stock,
        COALESCE((SELECT SUM(o.count) FROM orders AS o WHERE o.book_id = b.id), 0) AS sold,
        COALESCE((SELECT SUM(r.count) FROM reservations AS r WHERE r.book_id = b.id), 0) AS reserved
    FROM books AS b
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
    connection.execute(
        """CREATE TABLE IF NOT EXISTS reservations (
            xid TEXT NOT NULL,
            branch_id INTEGER NOT NULL,
            order_id TEXT NOT NULL,
            user TEXT NOT NULL,
            book_id TEXT NOT NULL REFERENCES books (id),
            count INTEGER NOT NULL CHECK (count > 0),
            price INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (xid, branch_id)
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
    rows = connection.execute(f"{_BOOK_WITH_SALES} ORDER BY b.id").fetchall()
    return [Book(**row) for row in rows]


def get_book(connection: sqlite3.Connection, book_id: str) -> Book:
    """One book, or :class:`UnknownBook`."""
    row = connection.execute(f"{_BOOK_WITH_SALES} WHERE b.id = ?", (book_id,)).fetchone()
    if row is None:
        raise _unknown_book(book_id)
    return Book(**row)


def _unknown_book(book_id: str) -> UnknownBook:
    return UnknownBook(f"there is no book {book_id!r}", book=book_id)


def _on_shelf(connection: sqlite3.Connection, book_id: str) -> sqlite3.Row:
    """The book's shelf row (id, title, price, stock), or :class:`UnknownBook`.

    What a sale needs, without :func:`get_book`'s copies sold and reserved: those are sums over every
    order and reservation of the book, a cost that grows with each sale.
    """
    row = connection.execute("SELECT id, title, price, stock FROM books WHERE id = ?", (book_id,)).fetchone()
    if row is None:
        raise _unknown_book(book_id)
    return row


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
    _check_count(count)
    user = normalize_user_name(user)
    existing = _find_order(connection, order_id)
    if existing is not None:
        if (existing.user, existing.book, existing.count) != (user, book_id, count):
            raise OrderConflict(f"order {order_id} already exists with other content", order=order_id)
        return existing, False
    shelf = _on_shelf(connection, book_id)
    _take_copies(connection, shelf, count)
    order = Order(
        id=order_id,
        user=user,
        book=book_id,
        count=count,
        price=shelf["price"],
        amount=shelf["price"] * count,
        created_at=now,
    )
    _insert_order(connection, order)
    return order, True


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_PURCHASE_COUNT:
        raise InvalidRequest(f"count must be between 1 and {MAX_PURCHASE_COUNT}, not {count}", count=count)


def _take_copies(connection: sqlite3.Connection, shelf: sqlite3.Row, count: int) -> None:
    """Take ``count`` copies off the ``shelf`` row's book, or refuse with :class:`InsufficientStock`."""
    if shelf["stock"] < count:
        raise InsufficientStock(
            f"only {shelf['stock']} copies of {shelf['title']!r} are left, cannot sell {count}",
            book=shelf["id"],
            stock=shelf["stock"],
            requested=count,
        )
    connection.execute("UPDATE books SET stock = stock - ? WHERE id = ?", (count, shelf["id"]))


def _insert_order(connection: sqlite3.Connection, order: Order) -> None:
    try:
        connection.execute(
            "INSERT INTO orders (id, user, book_id, count, price, amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order.id, order.user, order.book, order.count, order.price, order.amount, order.created_at),
        )
    except sqlite3.IntegrityError as exc:
        raise OrderConflict(f"order {order.id} already exists", order=order.id) from exc


def reserve(connection: sqlite3.Connection, reservation: Reservation) -> Reservation:
    """TCC try: take the copies off the shelf into ``reservation`` (refused as a purchase would be).

    The storefront priced the purchase from its copy of the catalogue; a price that changed since is
    refused, so the money frozen at balance always matches the order stock will record.
    """
    _check_count(reservation.count)
    shelf = _on_shelf(connection, reservation.book)
    if shelf["price"] != reservation.price:
        raise OrderConflict(
            f"{shelf['title']!r} costs {shelf['price']} fen now, not {reservation.price}",
            book=shelf["id"],
            price=shelf["price"],
        )
    _take_copies(connection, shelf, reservation.count)
    connection.execute(
        """INSERT INTO reservations (xid, branch_id, order_id, user, book_id, count, price, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            reservation.xid,
            reservation.branch_id,
            reservation.order_id,
            reservation.user,
            reservation.book,
            reservation.count,
            reservation.price,
            reservation.created_at,
        ),
    )
    return reservation


def confirm_reservation(connection: sqlite3.Connection, xid: str, branch_id: int) -> Order:
    """TCC confirm: the reserved copies become the order (dated when they were reserved)."""
    reservation = _pop_reservation(connection, xid, branch_id)
    order = Order(
        id=reservation.order_id,
        user=reservation.user,
        book=reservation.book,
        count=reservation.count,
        price=reservation.price,
        amount=reservation.price * reservation.count,
        created_at=reservation.created_at,
    )
    _insert_order(connection, order)
    return order


def release_reservation(connection: sqlite3.Connection, xid: str, branch_id: int) -> Reservation:
    """TCC cancel: put the reserved copies back on the shelf."""
    reservation = _pop_reservation(connection, xid, branch_id)
    connection.execute("UPDATE books SET stock = stock + ? WHERE id = ?", (reservation.count, reservation.book))
    return reservation


def _pop_reservation(connection: sqlite3.Connection, xid: str, branch_id: int) -> Reservation:
    return Reservation(**pop_held(connection, "reservations", _RESERVATION_COLUMNS, BranchKey(xid, branch_id)))


def list_reservations(connection: sqlite3.Connection) -> list[Reservation]:
    """Every reservation still held, oldest first (at rest, after recovery, there are none)."""
    rows = connection.execute(f"SELECT {_RESERVATION_COLUMNS} FROM reservations ORDER BY created_at").fetchall()
    return [Reservation(**row) for row in rows]


def list_orders(connection: sqlite3.Connection, user: str) -> list[Order]:
    """A user's orders, oldest first."""
    user = normalize_user_name(user)
    rows = connection.execute("SELECT id FROM orders WHERE user = ? ORDER BY created_at, id", (user,)).fetchall()
    return [get_order(connection, row["id"]) for row in rows]


def books_owned(connection: sqlite3.Connection, user: str) -> list[OwnedBook]:
    """The books ``user`` has bought, with how many copies of each, in catalogue order."""
    user = normalize_user_name(user)
    rows = connection.execute(
        """SELECT b.id, b.title, SUM(o.count) AS count
           FROM orders AS o JOIN books AS b ON b.id = o.book_id
           WHERE o.user = ? GROUP BY b.id ORDER BY b.id""",
        (user,),
    ).fetchall()
    return [OwnedBook(**row) for row in rows]


def _find_order(connection: sqlite3.Connection, order_id: str) -> Order | None:
    row = connection.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,)).fetchone()
    return None if row is None else Order(**row)
