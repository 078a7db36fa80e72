"""Domain rules on a real SQLite file: the shelf, the accounts, the payments and the error tree."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookstore import accounts, inventory
from bookstore.catalog import CATALOG, INITIAL_BALANCE, INITIAL_STOCK, format_money
from bookstore.db import Database, DatabaseClosed
from bookstore.errors import (
    BadGateway,
    InsufficientBalance,
    InsufficientStock,
    InvalidRequest,
    OrderConflict,
    UnknownBook,
    UnknownOrder,
    UnknownPayment,
    UnknownUser,
    UserExists,
    error_from_payload,
)

NOW = "2025-01-01T00:00:00.000+00:00"
ORDER = "a" * 32


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(
        tmp_path / "data" / "test.sqlite3",
        [inventory.create_schema, accounts.create_schema, accounts.create_payments_schema],
    )
    db.open()
    yield db
    db.close()


def test_the_catalogue_prices_are_exact_fen() -> None:
    assert [(book.id, book.price) for book in CATALOG] == [
        ("00001", 9900),
        ("00002", 6900),
        ("00003", 12800),
        ("00004", 8900),
        ("00005", 7900),
    ]
    assert INITIAL_STOCK == 10_000
    assert INITIAL_BALANCE == 100_000_000
    assert format_money(INITIAL_BALANCE) == "¥1,000,000.00"
    assert format_money(-5) == "-¥0.05"


def test_the_database_is_a_wal_file_with_the_catalogue(database: Database) -> None:
    with database.snapshot() as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        books = inventory.list_books(connection)
    assert database.path.is_file()
    assert [(book.id, book.stock, book.sold) for book in books] == [(b.id, INITIAL_STOCK, 0) for b in CATALOG]


def test_reopening_keeps_the_data_and_does_not_restock(database: Database) -> None:
    with database.transaction() as connection:
        inventory.place_order(connection, ORDER, "alice", "00001", 4, NOW)
    database.close()
    database.open()

    with database.snapshot() as connection:
        assert inventory.get_book(connection, "00001").stock == INITIAL_STOCK - 4


def test_a_transaction_that_raises_is_rolled_back(database: Database) -> None:
    with pytest.raises(InsufficientBalance), database.transaction() as connection:
        accounts.create_user(connection, "alice", NOW)
        inventory.place_order(connection, ORDER, "alice", "00003", 10_000, NOW)
        accounts.debit(connection, "alice", 10_000 * 12800)

    with database.snapshot() as connection:
        assert inventory.get_book(connection, "00003").stock == INITIAL_STOCK
        with pytest.raises(UnknownUser):
            accounts.get_account(connection, "alice")


def test_a_closed_database_says_so(database: Database) -> None:
    database.close()

    with pytest.raises(DatabaseClosed, match="not open"), database.snapshot():
        pass


def test_placing_an_order_takes_stock_and_counts_as_sold(database: Database) -> None:
    with database.transaction() as connection:
        order, created = inventory.place_order(connection, ORDER, "alice", "00002", 3, NOW)
        book = inventory.get_book(connection, "00002")
        owned = inventory.books_owned(connection, "alice")

    assert created
    assert (order.price, order.amount) == (6900, 20700)
    assert (book.stock, book.sold) == (INITIAL_STOCK - 3, 3)
    assert [(item.id, item.count) for item in owned] == [("00002", 3)]


def test_the_same_order_twice_sells_once(database: Database) -> None:
    with database.transaction() as connection:
        first, _ = inventory.place_order(connection, ORDER, "alice", "00002", 3, NOW)
        again, created = inventory.place_order(connection, ORDER, "alice", "00002", 3, "later")
        stock = inventory.get_book(connection, "00002").stock

    assert not created
    assert again == first
    assert stock == INITIAL_STOCK - 3


def test_an_order_id_reused_for_other_content_is_a_conflict(database: Database) -> None:
    with database.transaction() as connection:
        inventory.place_order(connection, ORDER, "alice", "00002", 3, NOW)
        with pytest.raises(OrderConflict):
            inventory.place_order(connection, ORDER, "alice", "00002", 4, NOW)


@pytest.mark.parametrize("count", [0, -1, 10_001])
def test_counts_outside_the_rules_are_refused(database: Database, count: int) -> None:
    with database.transaction() as connection, pytest.raises(InvalidRequest):
        inventory.place_order(connection, ORDER, "alice", "00001", count, NOW)


def test_selling_more_than_the_stock_is_refused_with_what_is_left(database: Database) -> None:
    with database.transaction() as connection:
        inventory.place_order(connection, ORDER, "alice", "00001", 9_999, NOW)
        with pytest.raises(InsufficientStock) as refused:
            inventory.place_order(connection, "b" * 32, "alice", "00001", 2, NOW)
        assert inventory.get_book(connection, "00001").stock == 1

    assert refused.value.detail["stock"] == 1


def test_unknown_books_and_orders_are_refused(database: Database) -> None:
    with database.transaction() as connection:
        with pytest.raises(UnknownBook):
            inventory.place_order(connection, ORDER, "alice", "99999", 1, NOW)
        with pytest.raises(UnknownOrder):
            inventory.get_order(connection, ORDER)


def test_accounts_open_with_the_initial_balance_once(database: Database) -> None:
    with database.transaction() as connection:
        account = accounts.create_user(connection, "alice", NOW)
        with pytest.raises(UserExists):
            accounts.create_user(connection, "alice", NOW)

    assert account.balance == INITIAL_BALANCE


def test_a_debit_never_takes_a_balance_below_zero(database: Database) -> None:
    with database.transaction() as connection:
        accounts.create_user(connection, "alice", NOW)
        accounts.debit(connection, "alice", INITIAL_BALANCE - 1)
        with pytest.raises(InsufficientBalance):
            accounts.debit(connection, "alice", 2)
        assert accounts.get_account(connection, "alice").balance == 1


@pytest.mark.parametrize("amount", [0, -100])
def test_a_debit_must_be_positive(database: Database, amount: int) -> None:
    with database.transaction() as connection:
        accounts.create_user(connection, "alice", NOW)
        with pytest.raises(InvalidRequest):
            accounts.debit(connection, "alice", amount)


def test_debiting_an_unknown_user_is_refused(database: Database) -> None:
    with database.transaction() as connection, pytest.raises(UnknownUser):
        accounts.debit(connection, "nobody", 1)


def test_a_payment_is_taken_once_and_refunded_once(database: Database) -> None:
    with database.transaction() as connection:
        accounts.create_user(connection, "alice", NOW)
        payment, created = accounts.pay(connection, ORDER, "alice", 500, NOW)
        _, created_again = accounts.pay(connection, ORDER, "alice", 500, NOW)
        assert accounts.get_account(connection, "alice").balance == INITIAL_BALANCE - 500
        refunded = accounts.refund(connection, ORDER, "later")
        refunded_again = accounts.refund(connection, ORDER, "even later")
        balance = accounts.get_account(connection, "alice").balance

    assert (created, created_again) == (True, False)
    assert payment.refunded_at is None
    assert refunded.refunded_at == refunded_again.refunded_at == "later"
    assert balance == INITIAL_BALANCE


def test_payment_ids_cannot_be_reused_and_must_exist_to_refund(database: Database) -> None:
    with database.transaction() as connection:
        accounts.create_user(connection, "alice", NOW)
        accounts.pay(connection, ORDER, "alice", 500, NOW)
        with pytest.raises(OrderConflict):
            accounts.pay(connection, ORDER, "alice", 600, NOW)
        with pytest.raises(UnknownPayment):
            accounts.refund(connection, "b" * 32, NOW)


def test_the_schema_forbids_negative_stock_even_past_the_code(database: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError), database.transaction() as connection:
        connection.execute("UPDATE books SET stock = -1 WHERE id = '00001'")


def test_business_refusals_survive_a_round_trip_through_json() -> None:
    original = InsufficientStock("only 2 left", book="00001", stock=2)

    rebuilt = error_from_payload(original.to_payload())

    assert isinstance(rebuilt, InsufficientStock)
    assert rebuilt.to_payload() == original.to_payload()


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"error": "invalid_request", "message": "bad count"},
        {"error": "unknown_book"},
        BadGateway("stock", "broken").to_payload(),
    ],
)
def test_anything_but_a_business_refusal_is_not_rebuilt(payload: object) -> None:
    assert error_from_payload(payload) is None
