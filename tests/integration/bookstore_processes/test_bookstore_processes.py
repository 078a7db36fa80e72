"""The services as real processes on loopback: a purchase end to end, a dependency going down, clean exits."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from bookstore.calltree import collect_trace
from bookstore.catalog import INITIAL_BALANCE, INITIAL_STOCK

if TYPE_CHECKING:
    from conftest import ServiceProcess

StartService = Callable[..., "ServiceProcess"]
Command = Callable[..., tuple[list[str], dict[str, str]]]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_purchase_through_the_storefront_moves_stock_and_money_then_everything_stops(
    start_service: StartService,
) -> None:
    stock = start_service("stock")
    balance = start_service("balance")
    storefront = start_service("storefront", BOOKSTORE_STOCK_URL=stock.url, BOOKSTORE_BALANCE_URL=balance.url)

    with httpx.Client(base_url=storefront.url, timeout=10, trust_env=False) as client:
        assert client.post("/api/users", json={"name": "alice"}).status_code == 201
        bought = client.post(
            "/api/purchase",
            json={"user": "alice", "book": "00005", "count": 2},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        alice = client.get("/api/users/alice").json()
        books = client.get("/api/books")

    assert bought.status_code == 201
    assert bought.headers["x-bookstore-service"] == "storefront"
    assert bought.headers["x-bookstore-version"] == "v-it"
    assert alice["balance"] == INITIAL_BALANCE - 2 * 7900
    istio = next(book for book in books.json()["books"] if book["id"] == "00005")
    assert (istio["stock"], istio["sold"]) == (INITIAL_STOCK - 2, 2)
    assert books.json()["books"][0]["id"] == "00005"  # by-sales: the only book sold ranks first
    assert httpx.get(f"{stock.url}/api/users/alice/books", trust_env=False).json()["books"][0]["count"] == 2
    assert httpx.get(f"{balance.url}/api/users/alice", trust_env=False).json()["balance"] == alice["balance"]

    tree = collect_trace(TRACE_ID, [storefront.url, stock.url, balance.url])
    assert tree.unreachable == {}
    (root,) = tree.roots
    assert root.span.service == "storefront"
    assert [child.span.service for child in root.children] == ["stock", "balance", "stock"]

    for process in (storefront, stock, balance):
        assert process.stop() == 0, process.output()
        assert "Finished server process" in process.output()


def test_a_storefront_whose_stock_service_stopped_answers_503_naming_it(start_service: StartService) -> None:
    stock = start_service("stock")
    balance = start_service("balance")
    storefront = start_service("storefront", BOOKSTORE_STOCK_URL=stock.url, BOOKSTORE_BALANCE_URL=balance.url)
    with httpx.Client(base_url=storefront.url, timeout=10, trust_env=False) as client:
        client.post("/api/users", json={"name": "bob"})
        assert stock.stop() == 0

        response = client.post("/api/purchase", json={"user": "bob", "book": "00001", "count": 1})
        bob = client.get(f"{balance.url}/api/users/bob")

    assert response.status_code == 503
    assert response.json()["error"] == "dependency_unavailable"
    assert response.json()["dependency"] == "stock"
    assert bob.json()["balance"] == INITIAL_BALANCE


def test_the_monolith_keeps_its_data_across_a_restart(start_service: StartService) -> None:
    first = start_service("monolith")
    with httpx.Client(base_url=first.url, timeout=10, trust_env=False) as client:
        client.post("/api/users", json={"name": "carol"})
        assert client.post("/api/purchase", json={"user": "carol", "book": "00001", "count": 3}).status_code == 201
    assert first.stop() == 0

    second = start_service("monolith")
    with httpx.Client(base_url=second.url, timeout=10, trust_env=False) as client:
        carol = client.get("/api/users/carol").json()
        book = next(book for book in client.get("/api/books").json()["books"] if book["id"] == "00001")

    assert carol["balance"] == INITIAL_BALANCE - 3 * 9900
    assert (book["stock"], book["sold"]) == (INITIAL_STOCK - 3, 3)


def test_a_bad_setting_ends_the_process_with_one_clear_line(bookstore_command: Command) -> None:
    argv, env = bookstore_command("balance", PORT="eighty")

    result = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "PORT='eighty' is not valid" in result.stderr
    assert "Traceback" not in result.stderr
