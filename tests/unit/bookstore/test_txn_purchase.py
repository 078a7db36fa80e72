"""Purchases as global transactions: the storefront (TM), tc (TC), stock and balance (TCC participants), in-process.

Faults are asked for as an attendee does (x-bookstore-fault, lab mode); every test ends by checking
the invariants from what each user owns, and that nothing stays reserved or frozen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import serve, settings_for
from fastapi import FastAPI

from bookstore.catalog import INITIAL_BALANCE, INITIAL_STOCK
from bookstore.services import balance, stock, storefront, tc
from bookstore.services.clients import BalanceClient, StockClient
from bookstore.settings import Settings
from bookstore.transport import ServiceHttp
from bookstore.txn.client import CoordinatorClient

pytestmark = pytest.mark.anyio

PURCHASE = {"user": "alice", "book": "00002", "count": 2}
PRICE = 6900


def lab(service: str, data_dir: Path) -> Settings:
    return replace(settings_for(service, data_dir), lab_mode=True)


@dataclass
class Shop:
    storefront: httpx.AsyncClient
    stock: httpx.AsyncClient
    balance: httpx.AsyncClient
    tc: httpx.AsyncClient
    participants: dict[str, FastAPI]

    async def buy(self, headers: dict[str, str] | None = None, **changes: Any) -> httpx.Response:
        return await self.storefront.post("/api/purchase", json={**PURCHASE, **changes}, headers=headers)

    async def transactions(self, **params: Any) -> dict[str, Any]:
        return (await self.tc.get("/api/transactions", params=params)).json()

    async def settled(self, timeout: float = 10) -> dict[str, Any]:
        """Wait until tc has no unfinished transaction; the transaction list then."""
        deadline = time.monotonic() + timeout
        while True:
            seen = await self.transactions()
            unfinished = {s: n for s, n in seen["counts"].items() if s not in FINISHED}
            if not unfinished:
                return seen
            assert time.monotonic() < deadline, f"tc still has unfinished transactions: {unfinished}"
            await asyncio.sleep(0.05)

    async def assert_consistent(self) -> None:
        """The invariants from what alice owns, and nothing held by a try."""
        books = {b["id"]: b for b in (await self.stock.get("/api/books")).json()["books"]}
        user = (await self.storefront.get("/api/users/alice")).json()
        owed = sum(books[b["id"]]["price"] * b["count"] for b in user["books"])
        assert INITIAL_BALANCE - user["balance"] == owed, user
        for book in books.values():
            assert INITIAL_STOCK - book["stock"] == book["sold"], book
            assert book["reserved"] == 0, book
        assert (await self.stock.get("/api/reservations")).json()["reservations"] == []
        assert (await self.balance.get("/api/frozen")).json()["frozen"] == []
        assert user["frozen"] == 0


FINISHED = {"committed", "rollbacked", "timeout_rollbacked"}


async def open_shop(stack: AsyncExitStack, data_dir: Path) -> Shop:
    stock_app = stock.create_app(lab("stock", data_dir))
    balance_app = balance.create_app(lab("balance", data_dir))
    to_participants = ServiceHttp(
        timeout=5,
        transport=ByHost(
            {"stock": httpx.ASGITransport(app=stock_app), "balance": httpx.ASGITransport(app=balance_app)}
        ),
    )
    tc_app = tc.create_app(lab("tc", data_dir), http=to_participants)
    storefront_app = storefront.create_app(
        lab("storefront", data_dir),
        stock=StockClient("http://stock", timeout=5, transport=httpx.ASGITransport(app=stock_app)),
        balance=BalanceClient("http://balance", timeout=5, transport=httpx.ASGITransport(app=balance_app)),
        coordinator=CoordinatorClient("http://tc", timeout=5, transport=httpx.ASGITransport(app=tc_app)),
    )
    clients = [await serve(stack, app) for app in (storefront_app, stock_app, balance_app, tc_app)]
    shop = Shop(*clients, participants={"stock": stock_app, "balance": balance_app})
    await shop.storefront.post("/api/users", json={"name": "alice"})
    return shop


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    async with AsyncExitStack() as stack:
        yield await open_shop(stack, tmp_path)


async def test_a_purchase_is_a_committed_global_transaction_with_two_branches(shop: Shop) -> None:
    bought = await shop.buy()
    assert bought.status_code == 201, bought.text
    order = bought.json()
    assert (order["user"], order["count"], order["amount"]) == ("alice", 2, 2 * PRICE)
    (txn,) = (await shop.settled())["transactions"]
    assert txn["name"] == "purchase" and txn["status"] == "committed"
    assert [(b["resource"], b["status"]) for b in txn["branches"]] == [("stock", "committed"), ("balance", "committed")]
    assert txn["outcome"]["order"] == order
    assert (await shop.stock.get(f"/api/orders/{order['id']}")).json() == order
    assert (await shop.balance.get(f"/api/payments/{order['id']}")).json()["amount"] == 2 * PRICE
    events = [e["event"] for e in (await shop.tc.get(f"/api/transactions/{txn['xid']}")).json()["events"]]
    assert events[0] == "begin" and "committing" in events and events[-1] == "committed"
    await shop.assert_consistent()


async def test_a_refused_try_rolls_back_the_other_branch(shop: Shop) -> None:
    refused = await shop.buy(book="00003", count=9_000)  # more money than alice has
    assert refused.status_code == 409 and refused.json()["error"] == "insufficient_balance"
    (txn,) = (await shop.settled())["transactions"]
    assert txn["status"] == "rollbacked" and txn["outcome"]["error"] == "insufficient_balance"
    fences = {f["action"]: f["status"] for f in (await shop.stock.get("/txn/fences")).json()["fences"]}
    assert fences == {"reserve-stock": "rollbacked"}  # stock had reserved: the copies went back
    (empty,) = (await shop.balance.get("/txn/fences")).json()["fences"]
    assert empty["status"] == "suspended"  # balance refused its try: the cancel was recorded empty
    await shop.assert_consistent()


async def test_the_same_idempotency_key_answers_the_first_order_and_charges_once(shop: Shop) -> None:
    key = {"Idempotency-Key": "9c1f6a52-first"}
    first, again = await shop.buy(headers=key), await shop.buy(headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    await shop.settled()
    user = (await shop.storefront.get("/api/users/alice")).json()
    assert user["balance"] == INITIAL_BALANCE - 2 * PRICE and user["books"][0]["count"] == 2
    other = await shop.buy(headers=key, count=3)
    assert other.status_code == 422 and "another purchase" in other.json()["message"]
    assert len((await shop.transactions())["transactions"]) == 1
    await shop.assert_consistent()


async def test_a_refusal_is_answered_again_for_its_key(shop: Shop) -> None:
    key = {"Idempotency-Key": "too-much"}
    answers = [await shop.buy(headers=key, book="00003", count=9_000) for _ in range(2)]
    assert [a.status_code for a in answers] == [409, 409]
    assert [a.json()["error"] for a in answers] == ["insufficient_balance"] * 2


async def test_a_failed_answer_is_retried_with_its_key_without_a_second_charge(shop: Shop) -> None:
    key = {"Idempotency-Key": "lost-answer"}
    lost = await shop.buy(headers={**key, "x-bookstore-fault": "storefront.after-try=fail-after"})
    assert lost.status_code == 500 and lost.json()["error"] == "injected_fault"
    retried = await shop.buy(headers=key)
    assert retried.status_code == 201
    await shop.settled()
    user = (await shop.storefront.get("/api/users/alice")).json()
    assert user["balance"] == INITIAL_BALANCE - 2 * PRICE
    await shop.assert_consistent()


@pytest.mark.parametrize(
    "fault",
    ["stock.confirm=fail", "balance.confirm=fail-after", "stock.confirm=fail-after", "balance.confirm=fail"],
)
async def test_a_failed_confirm_is_retried_until_it_answers(shop: Shop, fault: str) -> None:
    bought = await shop.buy(headers={"x-bookstore-fault": fault})
    assert bought.status_code == 201
    (txn,) = (await shop.settled())["transactions"]
    assert txn["status"] == "committed"
    failed = next(b for b in txn["branches"] if b["resource"] == fault.split(".")[0])
    assert failed["attempts"] == 2 and "injected_fault" in failed["last_error"]
    await shop.assert_consistent()
    user = (await shop.storefront.get("/api/users/alice")).json()
    assert user["books"][0]["count"] == 2


@pytest.mark.parametrize(
    "fault",
    [
        "stock.try=fail",
        "balance.try=fail",
        "stock.try=fail-after",
        "balance.try=fail-after",
        "storefront.after-try=fail",
        "stock.cancel=fail, balance.try=fail",
        "balance.cancel=fail-after, stock.try=fail",
    ],
)
async def test_a_fault_before_the_decision_rolls_everything_back(shop: Shop, fault: str) -> None:
    failed = await shop.buy(headers={"x-bookstore-fault": fault})
    # The storefront's own fault is its 500; a participant's 500 reaches the buyer as a bad gateway.
    assert (failed.status_code, failed.json()["error"]) in ((500, "injected_fault"), (502, "bad_gateway"))
    (txn,) = (await shop.settled())["transactions"]
    assert txn["status"] == "rollbacked"
    await shop.assert_consistent()
    assert (await shop.storefront.get("/api/users/alice")).json()["books"] == []


async def test_a_transaction_nobody_decides_times_out_and_its_reservation_is_released(shop: Shop) -> None:
    began = await shop.tc.post(
        "/api/transactions",
        json={
            "name": "purchase",
            "timeout_seconds": 0.2,
            "branches": [{"resource": "stock", "action": "reserve-stock", "url": "http://stock"}],
        },
    )
    txn = began.json()
    (branch,) = txn["branches"]
    reservation = {"order_id": "e" * 32, "user": "alice", "book": "00001", "count": 1, "price": 9900}
    tried = await shop.stock.post(
        "/txn/reserve-stock/try", json={"xid": txn["xid"], "branch_id": branch["branch_id"], **reservation}
    )
    assert tried.status_code == 200
    (settled,) = (await shop.settled())["transactions"]
    assert settled["status"] == "timeout_rollbacked"
    late = await shop.tc.post(f"/api/transactions/{txn['xid']}/commit", json={})
    assert late.status_code == 409 and late.json()["error"] == "transaction_not_active"
    await shop.assert_consistent()


async def test_a_restarted_tc_finishes_what_its_predecessor_decided(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        stock_app = stock.create_app(lab("stock", tmp_path))
        stock_client = await serve(stack, stock_app)
        # The first tc cannot reach the participant: its phase two stays unfinished when it stops.
        unreachable = ServiceHttp(timeout=5, transport=httpx.MockTransport(_refuse_connection))
        async with AsyncExitStack() as first:
            first_tc = await serve(first, tc.create_app(lab("tc", tmp_path), http=unreachable))
            began = (await first_tc.post("/api/transactions", json=_one_stock_branch())).json()
            reservation = {"order_id": "f" * 32, "user": "alice", "book": "00001", "count": 1, "price": 9900}
            branch = {"xid": began["xid"], "branch_id": began["branches"][0]["branch_id"]}
            assert (
                await stock_client.post("/txn/reserve-stock/try", json={**branch, **reservation})
            ).status_code == 200
            decided = (await first_tc.post(f"/api/transactions/{began['xid']}/commit", json={})).json()
            assert decided["status"] == "committing"
            deadline = time.monotonic() + 10
            while (await first_tc.get(f"/api/transactions/{began['xid']}")).json()["branches"][0]["attempts"] < 1:
                assert time.monotonic() < deadline, "the first tc never tried to confirm"
                await asyncio.sleep(0.05)
        # A new tc on the same log, with the participant reachable: its first watch recovers the transaction.
        reachable = ServiceHttp(timeout=5, transport=httpx.ASGITransport(app=stock_app))
        second_tc = await serve(stack, tc.create_app(lab("tc", tmp_path), http=reachable))
        deadline = time.monotonic() + 10
        while (await second_tc.get(f"/api/transactions/{began['xid']}")).json()["status"] != "committed":
            assert time.monotonic() < deadline, "the restarted tc did not finish the transaction"
            await asyncio.sleep(0.05)
        book = (await stock_client.get("/api/books/00001")).json()
        assert (book["sold"], book["reserved"]) == (1, 0)


class ByHost(httpx.AsyncBaseTransport):
    """Each request to the transport of its host (the apps of several services in this process)."""

    def __init__(self, transports: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.transports = transports

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


def _refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _one_stock_branch() -> dict[str, Any]:
    return {"name": "purchase", "branches": [{"resource": "stock", "action": "reserve-stock", "url": "http://stock"}]}


async def test_faults_need_lab_mode(
    serve_app: Callable[[FastAPI], Awaitable[httpx.AsyncClient]], tmp_path: Path
) -> None:
    client = await serve_app(stock.create_app(settings_for("stock", tmp_path)))
    refused = await client.get("/api/books", headers={"x-bookstore-fault": "stock.try=fail"})
    assert refused.status_code == 422 and "BOOKSTORE_LAB_MODE" in refused.json()["message"]


async def test_an_unknown_fault_point_is_refused_with_the_choices(shop: Shop) -> None:
    refused = await shop.buy(headers={"x-bookstore-fault": "stock.explode=now"})
    assert refused.status_code == 422 and "stock.confirm" in refused.json()["message"]
    assert (await shop.transactions())["transactions"] == []


async def test_without_a_coordinator_an_idempotency_key_is_refused(
    serve_app: Callable[[FastAPI], Awaitable[httpx.AsyncClient]], tmp_path: Path
) -> None:
    stock_app = stock.create_app(settings_for("stock", tmp_path))
    balance_app = balance.create_app(settings_for("balance", tmp_path))
    await serve_app(stock_app)
    await serve_app(balance_app)
    client = await serve_app(
        storefront.create_app(
            settings_for("storefront", tmp_path),
            stock=StockClient("http://stock", timeout=5, transport=httpx.ASGITransport(app=stock_app)),
            balance=BalanceClient("http://balance", timeout=5, transport=httpx.ASGITransport(app=balance_app)),
        )
    )
    refused = await client.post("/api/purchase", json=PURCHASE, headers={"Idempotency-Key": "k"})
    assert refused.status_code == 422 and "BOOKSTORE_TC_URL" in refused.json()["message"]
