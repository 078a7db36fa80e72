"""The public API's rules, checked once against the monolith and once against the storefront + services."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from bookstore.catalog import CATALOG, INITIAL_BALANCE, INITIAL_STOCK

pytestmark = pytest.mark.anyio

PRICES = {book.id: book.price for book in CATALOG}


async def create_user(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/api/users", json={"name": name})
    assert response.status_code == 201, response.text


async def buy(client: httpx.AsyncClient, user: str, book: str, count: int) -> httpx.Response:
    return await client.post("/api/purchase", json={"user": user, "book": book, "count": count})


async def state(client: httpx.AsyncClient, *users: str) -> dict[str, Any]:
    """Everything a purchase could change: the books (by id) and each user."""
    books = (await client.get("/api/books")).json()["books"]
    return {
        "books": {book["id"]: book for book in books},
        "users": {user: (await client.get(f"/api/users/{user}")).json() for user in users},
    }


def assert_invariants(snapshot: dict[str, Any]) -> None:
    """initial_stock − stock == sold per book; initial_balance − balance == Σ price × bought per user."""
    bought_per_book: dict[str, int] = {}
    for user in snapshot["users"].values():
        spent = sum(PRICES[book["id"]] * book["count"] for book in user["books"])
        assert INITIAL_BALANCE - user["balance"] == spent
        for book in user["books"]:
            bought_per_book[book["id"]] = bought_per_book.get(book["id"], 0) + book["count"]
    for book in snapshot["books"].values():
        assert INITIAL_STOCK - book["stock"] == book["sold"] == bought_per_book.get(book["id"], 0)


async def test_books_are_the_catalogue_with_full_stock_and_identity_headers(public: httpx.AsyncClient) -> None:
    response = await public.get("/api/books")

    assert response.status_code == 200
    assert response.headers["x-bookstore-version"] == "v-test"
    assert response.headers["x-bookstore-service"] in {"monolith", "storefront"}
    assert response.headers["x-bookstore-ranking"] == "by-sales@1.0.0"
    body = response.json()
    assert body["ranking"] == {"module": "by-sales", "version": "1.0.0", "error": None}
    assert {(book["id"], book["title"], book["price"]) for book in body["books"]} == {
        ("00001", "未来架构", 9900),
        ("00002", "Cloud Native Go", 6900),
        ("00003", "云原生Java", 12800),
        ("00004", "Python云原生", 8900),
        ("00005", "深入浅出Istio", 7900),
    }
    assert all(book["stock"] == 10_000 and book["sold"] == 0 for book in body["books"])


async def test_a_new_user_has_the_initial_balance_and_no_books(public: httpx.AsyncClient) -> None:
    created = await public.post("/api/users", json={"name": "小明"})
    fetched = await public.get("/api/users/小明")

    assert created.status_code == 201
    assert created.json() == fetched.json() == {"name": "小明", "balance": 100_000_000, "books": [], "frozen": 0}


async def test_a_name_cannot_be_taken_twice(public: httpx.AsyncClient) -> None:
    await create_user(public, "alice")
    again = await public.post("/api/users", json={"name": "alice"})

    assert again.status_code == 409
    assert again.json()["error"] == "user_exists"


async def test_an_unknown_user_is_404(public: httpx.AsyncClient) -> None:
    response = await public.get("/api/users/nobody")

    assert response.status_code == 404
    assert response.json()["error"] == "unknown_user"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 65},
        {"name": ".."},
        {"name": "has space"},
        {"name": "slash/y"},
        {"name": 42},
        {"name": None},
        {"name": ["alice"]},
        {"name": "alice", "admin": True},
        ["alice"],
    ],
)
async def test_bad_user_bodies_are_422_and_create_nobody(public: httpx.AsyncClient, body: object) -> None:
    response = await public.post("/api/users", json=body)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["fields"]
    assert (await public.get("/api/users/alice")).status_code == 404


@pytest.mark.parametrize("name", ["x" * 65, ".hidden", "-dash-first", "semi;colon"])
async def test_bad_user_names_in_the_path_are_422(public: httpx.AsyncClient, name: str) -> None:
    response = await public.get(f"/api/users/{name}")

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_a_purchase_moves_stock_and_money_and_records_the_order(public: httpx.AsyncClient) -> None:
    await create_user(public, "alice")

    response = await buy(public, "alice", "00003", 3)

    assert response.status_code == 201
    order = response.json()
    assert order["user"] == "alice" and order["book"] == "00003" and order["count"] == 3
    assert order["price"] == 12800 and order["amount"] == 3 * 12800
    assert re.fullmatch(r"[0-9a-f]{32}", order["id"])
    after = await state(public, "alice")
    assert after["books"]["00003"]["stock"] == 9_997
    assert after["books"]["00003"]["sold"] == 3
    assert after["users"]["alice"]["balance"] == 100_000_000 - 38_400
    assert after["users"]["alice"]["books"] == [{"id": "00003", "title": "云原生Java", "count": 3}]
    assert_invariants(after)


@pytest.mark.parametrize(
    "body",
    [
        {"user": "alice", "book": "00001", "count": 0},
        {"user": "alice", "book": "00001", "count": -1},
        {"user": "alice", "book": "00001", "count": 10_001},
        {"user": "alice", "book": "00001", "count": 10**30},
        {"user": "alice", "book": "00001", "count": "3"},
        {"user": "alice", "book": "00001", "count": 3.0},
        {"user": "alice", "book": "00001", "count": 2.5},
        {"user": "alice", "book": "00001", "count": True},
        {"user": "alice", "book": "00001", "count": None},
        {"user": "alice", "book": "00001"},
        {"user": "alice", "count": 1},
        {"book": "00001", "count": 1},
        {"user": "alice", "book": 1, "count": 1},
        {"user": "alice", "book": "1", "count": 1},
        {"user": "alice", "book": "000001", "count": 1},
        {"user": "x" * 65, "book": "00001", "count": 1},
        {"user": "alice", "book": "00001", "count": 1, "price": 0},
        [{"user": "alice", "book": "00001", "count": 1}],
        "buy",
    ],
)
async def test_bad_purchase_bodies_are_422_and_change_nothing(public: httpx.AsyncClient, body: object) -> None:
    await create_user(public, "alice")
    before = await state(public, "alice")

    response = await public.post("/api/purchase", json=body)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert await state(public, "alice") == before


async def test_a_body_that_is_not_json_is_422(public: httpx.AsyncClient) -> None:
    response = await public.post(
        "/api/purchase", content=b'{"user": "alice",', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_an_oversized_body_is_413_with_the_identity_headers(public: httpx.AsyncClient) -> None:
    response = await public.post(
        "/api/users", content=b" " * 300_000 + b"{}", headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert response.headers["x-bookstore-version"] == "v-test"


@pytest.mark.parametrize(
    ("user", "book", "count", "status", "error"),
    [
        ("alice", "00009", 1, 404, "unknown_book"),
        ("nobody", "00001", 1, 404, "unknown_user"),
        # 10 000 × ¥128 = ¥1 280 000: more money than a new user has.
        ("alice", "00003", 10_000, 409, "insufficient_balance"),
    ],
)
async def test_refused_purchases_say_why_and_change_nothing(
    public: httpx.AsyncClient, user: str, book: str, count: int, status: int, error: str
) -> None:
    await create_user(public, "alice")
    before = await state(public, "alice")

    response = await buy(public, user, book, count)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert await state(public, "alice") == before


async def test_too_little_stock_is_409_and_changes_nothing(public: httpx.AsyncClient) -> None:
    await create_user(public, "alice")
    assert (await buy(public, "alice", "00002", 9_995)).status_code == 201
    before = await state(public, "alice")

    response = await buy(public, "alice", "00002", 6)

    assert response.status_code == 409
    assert response.json()["error"] == "insufficient_stock"
    assert response.json()["stock"] == 5
    assert await state(public, "alice") == before
    assert_invariants(before)


async def test_concurrent_purchases_keep_the_invariants(public: httpx.AsyncClient) -> None:
    users = ["ann", "ben", "cai"]
    for user in users:
        await create_user(public, user)
    purchases = [(user, CATALOG[i % 5].id, 1 + i % 3) for i in range(30) for user in users[i % 3 : i % 3 + 1]]

    responses = await asyncio.gather(*(buy(public, user, book, count) for user, book, count in purchases))

    assert [response.status_code for response in responses] == [201] * len(purchases)
    after = await state(public, *users)
    assert sum(book["sold"] for book in after["books"].values()) == sum(count for _, _, count in purchases)
    assert_invariants(after)


async def test_concurrent_buyers_of_the_last_copies_never_oversell(public: httpx.AsyncClient) -> None:
    await create_user(public, "ann")
    await create_user(public, "ben")
    assert (await buy(public, "ann", "00005", 9_990)).status_code == 201

    responses = await asyncio.gather(*(buy(public, "ben", "00005", 1) for _ in range(16)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 10 + [409] * 6
    after = await state(public, "ann", "ben")
    assert after["books"]["00005"]["stock"] == 0
    assert_invariants(after)


async def test_unknown_routes_and_methods_are_json_errors(public: httpx.AsyncClient) -> None:
    missing = await public.get("/api/nothing")
    wrong_method = await public.delete("/api/books")

    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert missing.headers["x-bookstore-version"] == "v-test"


async def test_the_page_uses_only_relative_urls(public: httpx.AsyncClient) -> None:
    response = await public.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '"api/books"' in page and '"api/purchase"' in page
    # No absolute path or URL anywhere: under /proxy/8080/ those would miss the prefix.
    assert not re.search(r"""["'`]/(api|admin|health|debug)""", page)
    assert not re.search(r"""(href|src|action)=["']/""", page)
    assert not re.search(r"""["'`]https?://""", page)


async def test_health_names_service_and_version(public: httpx.AsyncClient) -> None:
    response = await public.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"] == "v-test"
