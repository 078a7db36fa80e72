"""The microservices: stock and balance APIs, the storefront's purchase flow, failing dependencies, traces."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bookstore.calltree import build_call_tree
from bookstore.catalog import INITIAL_BALANCE, INITIAL_STOCK
from bookstore.services import balance, storefront
from bookstore.services.clients import BalanceClient, StockClient
from bookstore.settings import Settings
from bookstore.tracing import Span

if TYPE_CHECKING:
    from conftest import Services

ServeApp = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
StartStorefront = Callable[..., Awaitable[httpx.AsyncClient]]

pytestmark = pytest.mark.anyio

ORDER = "c" * 32


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (into the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def answering(status: int, body: bytes, media_type: str = "application/json") -> Starlette:
    """A stand-in for a dependency gone wrong: every request gets the same answer."""

    async def reply(request: Request) -> Response:
        return Response(body, status_code=status, media_type=media_type)

    return Starlette(routes=[Route("/{path:path}", reply, methods=["GET", "POST"])])


@pytest.fixture
def storefront_with(
    serve_app: ServeApp, make_settings: Callable[[str], Settings]
) -> Callable[..., Awaitable[httpx.AsyncClient]]:
    """Serve a storefront in front of ``stock`` and a real balance service (unless ``balance`` is given)."""

    async def start(stock: StockClient, balance_client: BalanceClient | None = None) -> httpx.AsyncClient:
        if balance_client is None:
            balance_app = balance.create_app(make_settings("balance"))
            await serve_app(balance_app)
            balance_client = BalanceClient("http://balance", timeout=5, transport=httpx.ASGITransport(app=balance_app))
        app = storefront.create_app(make_settings("storefront"), stock=stock, balance=balance_client)
        return await serve_app(app)

    return start


async def test_stock_takes_an_order_once_and_refuses_a_changed_replay(services: Services) -> None:
    order = {"id": ORDER, "user": "alice", "book": "00001", "count": 2}

    first = await services.stock.post("/api/orders", json=order)
    replay = await services.stock.post("/api/orders", json=order)
    changed = await services.stock.post("/api/orders", json={**order, "count": 3})
    book = (await services.stock.get("/api/books/00001")).json()

    assert (first.status_code, replay.status_code, changed.status_code) == (201, 200, 409)
    assert replay.json() == first.json() == (await services.stock.get(f"/api/orders/{ORDER}")).json()
    assert changed.json()["error"] == "order_conflict"
    assert book["stock"] == INITIAL_STOCK - 2


async def test_stock_tells_which_books_a_user_owns(services: Services) -> None:
    for index, count in enumerate((1, 2)):
        await services.stock.post(
            "/api/orders", json={"id": f"{index:032x}", "user": "ann", "book": "00004", "count": count}
        )

    owned = (await services.stock.get("/api/users/ann/books")).json()

    assert owned == {"user": "ann", "books": [{"id": "00004", "title": "Python云原生", "count": 3}]}


async def test_balance_takes_a_payment_once_and_refunds_it_once(services: Services) -> None:
    await services.balance.post("/api/users", json={"name": "alice"})
    payment = {"id": ORDER, "user": "alice", "amount": 9900}

    first = await services.balance.post("/api/payments", json=payment)
    replay = await services.balance.post("/api/payments", json=payment)
    refunds = [await services.balance.post(f"/api/payments/{ORDER}/refund") for _ in range(2)]
    account = (await services.balance.get("/api/users/alice")).json()

    assert (first.status_code, replay.status_code) == (201, 200)
    assert [response.status_code for response in refunds] == [200, 200]
    assert refunds[0].json()["refunded_at"] == refunds[1].json()["refunded_at"] is not None
    assert account == {"name": "alice", "balance": INITIAL_BALANCE, "frozen": 0}


@pytest.mark.parametrize(
    "payment",
    [
        {"id": ORDER, "user": "alice", "amount": 0},
        {"id": ORDER, "user": "alice", "amount": -5},
        {"id": ORDER, "user": "alice", "amount": "5"},
        {"id": "not-hex", "user": "alice", "amount": 5},
    ],
)
async def test_balance_refuses_bad_payments(services: Services, payment: dict[str, object]) -> None:
    await services.balance.post("/api/users", json={"name": "alice"})

    response = await services.balance.post("/api/payments", json=payment)

    assert response.status_code == 422
    assert (await services.balance.get("/api/users/alice")).json()["balance"] == INITIAL_BALANCE


async def test_a_refused_purchase_leaves_no_order_and_no_payment(services: Services) -> None:
    await services.storefront.post("/api/users", json={"name": "alice"})

    response = await services.storefront.post("/api/purchase", json={"user": "alice", "book": "00003", "count": 10_000})

    assert response.json()["error"] == "insufficient_balance"
    assert (await services.stock.get("/api/users/alice/books")).json()["books"] == []
    assert (await services.balance.get("/api/users/alice")).json()["balance"] == INITIAL_BALANCE


async def test_a_refusal_says_which_service_decided_it_and_its_span_records_why(services: Services) -> None:
    await services.storefront.post("/api/users", json={"name": "carl"})

    unknown = await services.storefront.post("/api/purchase", json={"user": "carl", "book": "99999", "count": 1})
    poor = await services.storefront.post("/api/purchase", json={"user": "carl", "book": "00003", "count": 9_000})
    nobody = await services.storefront.post("/api/purchase", json={"user": "carl", "book": "00003", "count": 0})

    assert (unknown.json()["error"], unknown.json()["refused_by"]) == ("unknown_book", "stock")
    assert (poor.json()["error"], poor.json()["refused_by"]) == ("insufficient_balance", "balance")
    # The storefront answered all three (its header says so); the body says who decided.
    assert {r.headers["x-bookstore-service"] for r in (unknown, poor)} == {"storefront"}
    assert nobody.status_code == 422 and "refused_by" not in nobody.json()
    spans = (await services.storefront.get("/debug/spans")).json()["spans"]
    purchases = [span["error_type"] for span in spans if span["operation"] == "POST /api/purchase"]
    assert purchases == ["unknown_book", "insufficient_balance", "invalid_request"]


async def test_losing_the_race_for_the_last_copies_refunds_the_payment(services: Services) -> None:
    # Both buyers see 1 copy left when they check, both pay, only one order can take it: the other
    # storefront call must give the money back.
    await services.storefront.post("/api/users", json={"name": "ann"})
    await services.storefront.post("/api/users", json={"name": "ben"})
    await services.storefront.post("/api/purchase", json={"user": "ann", "book": "00002", "count": 9_999})

    responses = await asyncio.gather(
        *(
            services.storefront.post("/api/purchase", json={"user": "ben", "book": "00002", "count": 1})
            for _ in range(8)
        )
    )

    assert sorted(response.status_code for response in responses) == [201] + [409] * 7
    ben = (await services.storefront.get("/api/users/ben")).json()
    assert ben["balance"] == INITIAL_BALANCE - 6900
    assert ben["books"] == [{"id": "00002", "title": "Cloud Native Go", "count": 1}]


async def test_a_refusal_by_stock_after_payment_gives_the_money_back(
    storefront_with: StartStorefront, serve_app: ServeApp, make_settings: Callable[[str], Settings]
) -> None:
    # A stock service whose shelf shows copies but whose order desk then refuses: the moment in
    # a race where another buyer took the last copies between the storefront's check and its order.
    book = {"id": "00002", "title": "Cloud Native Go", "price": 6900, "stock": 5, "sold": 9_995}
    refusal = {"error": "insufficient_stock", "message": "only 0 copies left", "stock": 0}

    async def shelf(request: Request) -> Response:
        return JSONResponse(book)

    async def order_desk(request: Request) -> Response:
        return JSONResponse(refusal, status_code=409)

    racing_stock = Starlette(
        routes=[Route("/api/books/00002", shelf), Route("/api/orders", order_desk, methods=["POST"])]
    )
    balance_app = balance.create_app(make_settings("balance"))
    balance_service = await serve_app(balance_app)
    client = await storefront_with(
        StockClient("http://stock", timeout=2, transport=httpx.ASGITransport(app=racing_stock)),
        BalanceClient("http://balance", timeout=2, transport=httpx.ASGITransport(app=balance_app)),
    )
    await client.post("/api/users", json={"name": "ben"})

    response = await client.post("/api/purchase", json={"user": "ben", "book": "00002", "count": 1})

    assert response.status_code == 409
    assert response.json() == {**refusal, "refused_by": "stock"}
    assert response.headers["x-bookstore-error"] == "insufficient_stock"
    assert (await balance_service.get("/api/users/ben")).json()["balance"] == INITIAL_BALANCE
    (refund_span,) = [
        span for span in (await balance_service.get("/debug/spans")).json()["spans"] if "refund" in span["operation"]
    ]
    assert refund_span["status"] == 200


async def test_a_stock_service_that_is_down_is_a_503_naming_it(
    storefront_with: StartStorefront, closed_port: int
) -> None:
    client = await storefront_with(StockClient(f"http://127.0.0.1:{closed_port}", timeout=2))
    await client.post("/api/users", json={"name": "alice"})

    books = await client.get("/api/books")
    purchase = await client.post("/api/purchase", json={"user": "alice", "book": "00001", "count": 1})
    alice = await client.get("/api/users/alice")

    for response in (books, purchase, alice):
        assert response.status_code == 503
        assert response.json()["error"] == "dependency_unavailable"
        assert response.json()["dependency"] == "stock"
        assert response.headers["x-bookstore-service"] == "storefront"


async def test_a_balance_service_that_is_down_stops_the_purchase_before_stock_moves(
    services: Services, closed_port: int, storefront_with: StartStorefront
) -> None:
    stock = StockClient("http://stock", timeout=2, transport=httpx.ASGITransport(app=services.stock_app))
    down = BalanceClient(f"http://127.0.0.1:{closed_port}", timeout=2)
    client = await storefront_with(stock, down)

    response = await client.post("/api/purchase", json={"user": "alice", "book": "00001", "count": 1})

    assert response.status_code == 503
    assert response.json()["dependency"] == "balance"
    assert (await services.stock.get("/api/books/00001")).json()["stock"] == INITIAL_STOCK


async def test_a_dependency_that_does_not_answer_is_a_504(storefront_with: StartStorefront, silent_port: int) -> None:
    client = await storefront_with(StockClient(f"http://127.0.0.1:{silent_port}", timeout=0.2))

    response = await client.get("/api/books")

    assert response.status_code == 504
    assert response.json()["error"] == "dependency_timeout"
    assert response.json()["dependency"] == "stock"


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "expected_error"),
    [
        (500, b'{"error": "internal_error", "message": "boom"}', 502, "bad_gateway"),
        (200, b"<html>not json</html>", 502, "bad_gateway"),
        (200, b'{"books": "none"}', 502, "bad_gateway"),
        (422, b'{"error": "invalid_request", "message": "bad"}', 502, "bad_gateway"),
        (503, b"no healthy upstream", 503, "dependency_unavailable"),
        (504, b"upstream request timeout", 504, "dependency_timeout"),
    ],
)
async def test_a_dependency_answering_wrongly_is_reported_not_passed_on(
    storefront_with: StartStorefront, status: int, body: bytes, expected_status: int, expected_error: str
) -> None:
    broken = httpx.ASGITransport(app=answering(status, body))
    client = await storefront_with(StockClient("http://stock", timeout=2, transport=broken))

    response = await client.get("/api/books")

    assert response.status_code == expected_status
    assert response.json()["error"] == expected_error
    assert response.json()["dependency"] == "stock"


async def test_a_purchase_is_one_trace_across_the_three_services(services: Services) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    caller_span = "b7ad6b7169203331"
    await services.storefront.post("/api/users", json={"name": "alice"})

    response = await services.storefront.post(
        "/api/purchase",
        json={"user": "alice", "book": "00001", "count": 1},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )

    assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
    spans: list[Span] = []
    for client in (services.storefront, services.stock, services.balance):
        listed = await client.get("/debug/spans", params={"trace_id": trace_id})
        spans += [Span.model_validate(span) for span in listed.json()["spans"]]
    (root,) = build_call_tree(spans)
    assert (root.span.service, root.span.operation, root.span.parent_id) == (
        "storefront",
        "POST /api/purchase",
        caller_span,
    )
    assert [(child.span.service, child.span.operation) for child in root.children] == [
        ("stock", "GET /api/books/{book_id}"),
        ("balance", "POST /api/payments"),
        ("stock", "POST /api/orders"),
    ]


@pytest.mark.parametrize(
    "traceparent",
    ["garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "ff-" + "1" * 32 + "-" + "2" * 16 + "-01"],
)
async def test_an_invalid_traceparent_starts_a_new_trace(services: Services, traceparent: str) -> None:
    response = await services.stock.get("/api/books", headers={"traceparent": traceparent})

    _, trace_id, _, _ = response.headers["traceresponse"].split("-")
    (span,) = (await services.stock.get("/debug/spans", params={"trace_id": trace_id})).json()["spans"]
    assert span["parent_id"] is None
    assert trace_id not in traceparent


async def test_spans_are_bounded_and_filtered_by_valid_trace_ids(
    serve_app: ServeApp, make_settings: Callable[[str], Settings]
) -> None:
    client = await serve_app(balance.create_app(replace(make_settings("balance"), span_limit=3)))
    for _ in range(5):
        await client.get("/health")

    kept = (await client.get("/debug/spans")).json()["spans"]
    bad = await client.get("/debug/spans", params={"trace_id": "nope"})

    assert len(kept) == 3
    assert bad.status_code == 422
