"""The TCC fence, transition by transition, as Seata's tcc_fence_log: on SQLite, then through stock and balance."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from bookstore.catalog import INITIAL_BALANCE, INITIAL_STOCK
from bookstore.errors import BranchConflict, BranchNotTried, TryRefused
from bookstore.txn.fence import (
    BranchKey,
    FenceStatus,
    PhaseTwoOutcome,
    cancel_branch,
    confirm_branch,
    create_schema,
    list_fences,
    try_branch,
)

if TYPE_CHECKING:
    from conftest import Services

KEY = BranchKey("a" * 32, 1)
ACTION = "reserve-stock"


@pytest.fixture
def connection() -> Iterator[sqlite3.Connection]:
    with sqlite3.connect(":memory:", isolation_level=None) as connection:
        connection.row_factory = sqlite3.Row
        create_schema(connection)
        yield connection


class Work:
    """Counts what the business side was asked to do, so a test sees whether a phase ran its work."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def __call__(self, what: str) -> object:
        return lambda: self.done.append(what)


def status(connection: sqlite3.Connection) -> FenceStatus:
    (record,) = list_fences(connection, xid=KEY.xid)
    return record.status


def test_try_then_confirm_applies_once(connection: sqlite3.Connection) -> None:
    work = Work()
    try_branch(connection, KEY, ACTION, work("try"))
    assert status(connection) is FenceStatus.TRIED
    assert confirm_branch(connection, KEY, ACTION, work("confirm")) == (FenceStatus.COMMITTED, PhaseTwoOutcome.DONE)
    # A second delivery (the coordinator never heard the first answer) does nothing.
    assert confirm_branch(connection, KEY, ACTION, work("confirm")) == (FenceStatus.COMMITTED, PhaseTwoOutcome.ALREADY)
    assert work.done == ["try", "confirm"]


def test_try_then_cancel_releases_once(connection: sqlite3.Connection) -> None:
    work = Work()
    try_branch(connection, KEY, ACTION, work("try"))
    assert cancel_branch(connection, KEY, ACTION, work("cancel")) == (FenceStatus.ROLLBACKED, PhaseTwoOutcome.DONE)
    assert cancel_branch(connection, KEY, ACTION, work("cancel")) == (FenceStatus.ROLLBACKED, PhaseTwoOutcome.ALREADY)
    assert work.done == ["try", "cancel"]


def test_a_cancel_before_its_try_is_recorded_empty_and_the_late_try_is_refused(connection: sqlite3.Connection) -> None:
    work = Work()
    assert cancel_branch(connection, KEY, ACTION, work("cancel")) == (FenceStatus.SUSPENDED, PhaseTwoOutcome.EMPTY)
    assert status(connection) is FenceStatus.SUSPENDED
    with pytest.raises(TryRefused, match="cancelled before its try arrived"):
        try_branch(connection, KEY, ACTION, work("try"))
    assert cancel_branch(connection, KEY, ACTION, work("cancel")) == (FenceStatus.SUSPENDED, PhaseTwoOutcome.ALREADY)
    assert work.done == []


def test_a_second_try_is_refused(connection: sqlite3.Connection) -> None:
    work = Work()
    try_branch(connection, KEY, ACTION, work("try"))
    with pytest.raises(TryRefused, match="tried already"):
        try_branch(connection, KEY, ACTION, work("try"))
    assert work.done == ["try"]


def test_a_confirm_before_its_try_is_retryable_and_changes_nothing(connection: sqlite3.Connection) -> None:
    work = Work()
    with pytest.raises(BranchNotTried):
        confirm_branch(connection, KEY, ACTION, work("confirm"))
    assert list_fences(connection) == [] and work.done == []


@pytest.mark.parametrize("first", ["cancel-after-try", "cancel-before-try"])
def test_a_confirm_after_a_cancel_is_a_conflict(connection: sqlite3.Connection, first: str) -> None:
    work = Work()
    if first == "cancel-after-try":
        try_branch(connection, KEY, ACTION, work("try"))
    cancel_branch(connection, KEY, ACTION, work("cancel"))
    with pytest.raises(BranchConflict):
        confirm_branch(connection, KEY, ACTION, work("confirm"))
    assert "confirm" not in work.done


def test_a_cancel_after_a_confirm_is_a_conflict(connection: sqlite3.Connection) -> None:
    work = Work()
    try_branch(connection, KEY, ACTION, work("try"))
    confirm_branch(connection, KEY, ACTION, work("confirm"))
    with pytest.raises(BranchConflict):
        cancel_branch(connection, KEY, ACTION, work("cancel"))
    assert status(connection) is FenceStatus.COMMITTED and work.done == ["try", "confirm"]


# --- The same transitions through the participants' HTTP API, with their business effects -----------

XID = "b" * 32
ORDER = "c" * 32


def reserve(branch_id: int = 1, count: int = 3) -> dict[str, object]:
    return {
        "xid": XID,
        "branch_id": branch_id,
        "order_id": ORDER,
        "user": "alice",
        "book": "00002",
        "count": count,
        "price": 6900,
    }


def branch(branch_id: int = 1) -> dict[str, object]:
    return {"xid": XID, "branch_id": branch_id}


async def book(services: Services) -> dict[str, int]:
    return (await services.stock.get("/api/books/00002")).json()


@pytest.mark.anyio
async def test_stock_reserves_then_sells_once(services: Services) -> None:
    tried = await services.stock.post("/txn/reserve-stock/try", json=reserve())
    assert tried.status_code == 200 and tried.json()["fence"] == "tried"
    held = await book(services)
    assert (held["stock"], held["reserved"], held["sold"]) == (INITIAL_STOCK - 3, 3, 0)
    assert [r["order_id"] for r in (await services.stock.get("/api/reservations")).json()["reservations"]] == [ORDER]

    confirms = [await services.stock.post("/txn/reserve-stock/confirm", json=branch()) for _ in range(2)]
    assert [c.json()["outcome"] for c in confirms] == ["done", "already"]
    sold = await book(services)
    assert (sold["stock"], sold["reserved"], sold["sold"]) == (INITIAL_STOCK - 3, 0, 3)
    order = (await services.stock.get(f"/api/orders/{ORDER}")).json()
    assert (order["user"], order["count"], order["amount"]) == ("alice", 3, 3 * 6900)
    cancelled = await services.stock.post("/txn/reserve-stock/cancel", json=branch())
    assert cancelled.status_code == 409 and cancelled.json()["error"] == "branch_conflict"


@pytest.mark.anyio
async def test_stock_cancel_puts_the_copies_back_once(services: Services) -> None:
    await services.stock.post("/txn/reserve-stock/try", json=reserve())
    cancels = [await services.stock.post("/txn/reserve-stock/cancel", json=branch()) for _ in range(2)]
    assert [(c.json()["fence"], c.json()["outcome"]) for c in cancels] == [
        ("rollbacked", "done"),
        ("rollbacked", "already"),
    ]
    back = await book(services)
    assert (back["stock"], back["reserved"], back["sold"]) == (INITIAL_STOCK, 0, 0)


@pytest.mark.anyio
async def test_a_late_try_after_an_empty_cancel_holds_nothing(services: Services) -> None:
    cancelled = await services.stock.post("/txn/reserve-stock/cancel", json=branch())
    assert (cancelled.json()["fence"], cancelled.json()["outcome"]) == ("suspended", "empty")
    late = await services.stock.post("/txn/reserve-stock/try", json=reserve())
    assert late.status_code == 409 and late.json()["error"] == "try_refused"
    assert (await book(services))["stock"] == INITIAL_STOCK
    assert (await services.stock.get("/api/reservations")).json()["reservations"] == []
    (fence,) = (await services.stock.get("/txn/fences", params={"xid": XID})).json()["fences"]
    assert (fence["action"], fence["status"]) == ("reserve-stock", "suspended")


@pytest.mark.anyio
async def test_a_refused_try_leaves_no_fence_so_its_cancel_is_empty(services: Services) -> None:
    whole_shelf = await services.stock.post("/txn/reserve-stock/try", json=reserve(count=INITIAL_STOCK))
    assert whole_shelf.status_code == 200
    too_many = await services.stock.post("/txn/reserve-stock/try", json=reserve(branch_id=2, count=1))
    assert too_many.status_code == 409 and too_many.json()["error"] == "insufficient_stock"
    cancelled = await services.stock.post("/txn/reserve-stock/cancel", json=branch(2))
    assert cancelled.json()["outcome"] == "empty"


@pytest.mark.anyio
async def test_balance_freezes_then_takes_or_gives_back(services: Services) -> None:
    await services.balance.post("/api/users", json={"name": "alice"})
    freeze = {"xid": XID, "branch_id": 1, "order_id": ORDER, "user": "alice", "amount": 500}
    assert (await services.balance.post("/txn/freeze-money/try", json=freeze)).status_code == 200
    assert (await services.balance.get("/api/users/alice")).json() == {
        "name": "alice",
        "balance": INITIAL_BALANCE - 500,
        "frozen": 500,
    }
    await services.balance.post("/txn/freeze-money/confirm", json=branch())
    assert (await services.balance.get("/api/users/alice")).json()["frozen"] == 0
    (payment,) = (await services.balance.get("/api/users/alice/payments")).json()["payments"]
    assert (payment["id"], payment["amount"]) == (ORDER, 500)

    other = {**freeze, "branch_id": 2, "order_id": "d" * 32}
    await services.balance.post("/txn/freeze-money/try", json=other)
    await services.balance.post("/txn/freeze-money/cancel", json=branch(2))
    assert (await services.balance.get("/api/users/alice")).json()["balance"] == INITIAL_BALANCE - 500
    assert (await services.balance.get("/api/frozen")).json()["frozen"] == []


@pytest.mark.anyio
async def test_a_freeze_beyond_the_balance_is_refused_without_a_fence(services: Services) -> None:
    await services.balance.post("/api/users", json={"name": "alice"})
    freeze = {"xid": XID, "branch_id": 1, "order_id": ORDER, "user": "alice", "amount": INITIAL_BALANCE + 1}
    refused = await services.balance.post("/txn/freeze-money/try", json=freeze)
    assert refused.status_code == 409 and refused.json()["error"] == "insufficient_balance"
    assert (await services.balance.get("/txn/fences")).json()["fences"] == []
