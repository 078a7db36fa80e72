"""Users, their money and the payments taken from it, on a SQLite connection inside a transaction.

The monolith and the balance service both keep accounts with these functions. Payments (money
taken for an order id, refundable once) exist only where money and orders live apart, in the
balance service; the monolith debits inside the purchase's own transaction instead. Every name is
normalised (NFKC, :func:`~bookstore.models.normalize_user_name`) before it is stored or looked up,
so look-alike spellings are one account, whoever calls.
"""

from __future__ import annotations

import sqlite3

from bookstore.catalog import INITIAL_BALANCE
from bookstore.errors import InsufficientBalance, InvalidRequest, OrderConflict, UnknownPayment, UnknownUser, UserExists
from bookstore.models import Account, FrozenMoney, Payment, normalize_user_name
from bookstore.txn.fence import BranchKey, pop_held

__all__ = [
    "confirm_frozen",
    "create_payments_schema",
    "create_schema",
    "create_user",
    "debit",
    "freeze",
    "frozen_total",
    "get_account",
    "get_payment",
    "list_frozen",
    "list_payments",
    "pay",
    "refund",
    "release_frozen",
]


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the users table."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS users (
            name TEXT PRIMARY KEY,
            balance INTEGER NOT NULL CHECK (balance >= 0),
            created_at TEXT NOT NULL
        )"""
    )


def create_payments_schema(connection: sqlite3.Connection) -> None:
    """Create the payments table (the balance service's record of what each order cost)."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS payments (
            id TEXT PRIMARY KEY,
            user TEXT NOT NULL REFERENCES users (name),
            amount INTEGER NOT NULL CHECK (amount > 0),
            created_at TEXT NOT NULL,
            refunded_at TEXT
        )"""
    )
    connection.execute("CREATE INDEX IF NOT EXISTS payments_by_user ON payments (user, created_at)")
    # Money a TCC try took and its confirm or cancel has not yet settled (lab 03).
    connection.execute(
        """CREATE TABLE IF NOT EXISTS frozen_money (
            xid TEXT NOT NULL,
            branch_id INTEGER NOT NULL,
            order_id TEXT NOT NULL,
            user TEXT NOT NULL REFERENCES users (name),
            amount INTEGER NOT NULL CHECK (amount > 0),
            created_at TEXT NOT NULL,
            PRIMARY KEY (xid, branch_id)
        )"""
    )


def create_user(connection: sqlite3.Connection, name: str, now: str) -> Account:
    """Open an account holding the initial balance, or refuse with :class:`UserExists` (look-alike names too)."""
    name = normalize_user_name(name)
    try:
        connection.execute(
            "INSERT INTO users (name, balance, created_at) VALUES (?, ?, ?)", (name, INITIAL_BALANCE, now)
        )
    except sqlite3.IntegrityError as exc:
        raise UserExists(f"user {name!r} already exists", user=name) from exc
    return Account(name=name, balance=INITIAL_BALANCE)


def get_account(connection: sqlite3.Connection, name: str) -> Account:
    """A user's account, or :class:`UnknownUser`."""
    name = normalize_user_name(name)
    row = connection.execute("SELECT name, balance FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UnknownUser(f"there is no user {name!r}", user=name)
    return Account(name=row["name"], balance=row["balance"])


def debit(connection: sqlite3.Connection, name: str, amount: int) -> Account:
    """Take ``amount`` fen from ``name``, refusing with :class:`InsufficientBalance` if it would go negative."""
    if amount <= 0:
        raise InvalidRequest(f"a debit must be a positive amount, not {amount}", amount=amount)
    name = normalize_user_name(name)
    account = get_account(connection, name)
    if account.balance < amount:
        raise InsufficientBalance(
            f"user {name!r} has {account.balance} fen, the purchase costs {amount}",
            user=name,
            balance=account.balance,
            amount=amount,
        )
    connection.execute("UPDATE users SET balance = balance - ? WHERE name = ?", (amount, name))
    return Account(name=name, balance=account.balance - amount)


def pay(connection: sqlite3.Connection, payment_id: str, user: str, amount: int, now: str) -> tuple[Payment, bool]:
    """Debit ``user`` for order ``payment_id``; returns the payment and whether it is new.

    Paying the same id again with the same content returns the first payment, so a caller may
    retry after a timeout without paying twice.
    """
    user = normalize_user_name(user)
    existing = connection.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
    if existing is not None:
        payment = Payment(**existing)
        if (payment.user, payment.amount) != (user, amount):
            raise OrderConflict(f"payment {payment_id} already exists with other content", payment=payment_id)
        return payment, False
    debit(connection, user, amount)
    connection.execute(
        "INSERT INTO payments (id, user, amount, created_at) VALUES (?, ?, ?, ?)", (payment_id, user, amount, now)
    )
    return Payment(id=payment_id, user=user, amount=amount, created_at=now), True


def get_payment(connection: sqlite3.Connection, payment_id: str) -> Payment:
    """One payment, or :class:`UnknownPayment`."""
    row = connection.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
    if row is None:
        raise UnknownPayment(f"there is no payment {payment_id!r}", payment=payment_id)
    return Payment(**row)


def refund(connection: sqlite3.Connection, payment_id: str, now: str) -> Payment:
    """Give a payment's money back; refunding it again changes nothing."""
    payment = get_payment(connection, payment_id)
    if payment.refunded_at is not None:
        return payment
    connection.execute("UPDATE users SET balance = balance + ? WHERE name = ?", (payment.amount, payment.user))
    connection.execute("UPDATE payments SET refunded_at = ? WHERE id = ?", (now, payment_id))
    return payment.model_copy(update={"refunded_at": now})


def list_payments(connection: sqlite3.Connection, user: str) -> list[Payment]:
    """A user's payments, oldest first, refunded ones included."""
    user = normalize_user_name(user)
    rows = connection.execute("SELECT * FROM payments WHERE user = ? ORDER BY created_at, id", (user,)).fetchall()
    return [Payment(**row) for row in rows]


# --- TCC (lab 03): a try freezes money, a confirm turns it into a payment, a cancel gives it back ---------


def freeze(connection: sqlite3.Connection, frozen: FrozenMoney) -> FrozenMoney:
    """TCC try: take the money from the balance into ``frozen`` (refused as a payment would be)."""
    debit(connection, frozen.user, frozen.amount)
    connection.execute(
        """INSERT INTO frozen_money (xid, branch_id, order_id, user, amount, created_at)
           VALUES (?, ?, ?, ?, ?, ?)""",
        (frozen.xid, frozen.branch_id, frozen.order_id, frozen.user, frozen.amount, frozen.created_at),
    )
    return frozen


def confirm_frozen(connection: sqlite3.Connection, xid: str, branch_id: int) -> Payment:
    """TCC confirm: the frozen money becomes the order's payment."""
    frozen = _pop_frozen(connection, xid, branch_id)
    try:
        connection.execute(
            "INSERT INTO payments (id, user, amount, created_at) VALUES (?, ?, ?, ?)",
            (frozen.order_id, frozen.user, frozen.amount, frozen.created_at),
        )
    except sqlite3.IntegrityError as exc:
        raise OrderConflict(f"payment {frozen.order_id} already exists", payment=frozen.order_id) from exc
    return Payment(id=frozen.order_id, user=frozen.user, amount=frozen.amount, created_at=frozen.created_at)


def release_frozen(connection: sqlite3.Connection, xid: str, branch_id: int) -> FrozenMoney:
    """TCC cancel: give the frozen money back."""
    frozen = _pop_frozen(connection, xid, branch_id)
    connection.execute("UPDATE users SET balance = balance + ? WHERE name = ?", (frozen.amount, frozen.user))
    return frozen


def _pop_frozen(connection: sqlite3.Connection, xid: str, branch_id: int) -> FrozenMoney:
    return FrozenMoney(**pop_held(connection, "frozen_money", "*", BranchKey(xid, branch_id)))


def frozen_total(connection: sqlite3.Connection, user: str) -> int:
    """How much of ``user``'s money TCC tries hold right now."""
    user = normalize_user_name(user)
    row = connection.execute("SELECT COALESCE(SUM(amount), 0) AS total FROM frozen_money WHERE user = ?", (user,))
    return int(row.fetchone()["total"])


def list_frozen(connection: sqlite3.Connection) -> list[FrozenMoney]:
    """Every frozen amount still held, oldest first (at rest, after recovery, there are none)."""
    rows = connection.execute("SELECT * FROM frozen_money ORDER BY created_at").fetchall()
    return [FrozenMoney(**row) for row in rows]
