"""Ranking modules: the host's rules, refused modules, atomic activation and the admin API."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator

import httpx
import pytest

from bookstore.catalog import CATALOG
from bookstore.errors import InvalidRequest, ModuleActive, ModuleExists, ModuleNotInstalled, ModuleRejected
from bookstore.models import Book
from bookstore.modules import BUNDLED_MODULES, ModuleHost
from tests.unit.bookstore.conftest import ADMIN

BY_TITLE = '''
"""Alphabetical by title."""


def rank(books):
    return sorted(books, key=lambda book: book["title"])
'''

SHELF = [
    Book(id=book.id, title=book.title, price=book.price, stock=10_000 - sold, sold=sold)
    for book, sold in zip(CATALOG, (5, 1, 9, 0, 3), strict=True)
]


def ids(books: list[Book]) -> list[str]:
    return [book.id for book in books]


@pytest.fixture
async def host() -> AsyncIterator[ModuleHost]:
    host = ModuleHost()
    await host.start("by-sales")
    try:
        yield host
    finally:
        await host.close()


@pytest.mark.anyio
async def test_the_bundled_rankings_order_as_they_promise(host: ModuleHost) -> None:
    for name in BUNDLED_MODULES:
        await host.install(name, "9.0", bundled=name)
    rankings = {}
    for name in BUNDLED_MODULES:
        await host.activate(name, "9.0")
        rankings[name] = ids((await host.rank(SHELF))[0])

    assert rankings["by-sales"] == ["00003", "00001", "00005", "00002", "00004"]
    assert rankings["by-price"] == ["00002", "00005", "00004", "00001", "00003"]
    assert rankings["by-stock"] == ["00004", "00002", "00005", "00001", "00003"]


@pytest.mark.anyio
async def test_activation_switches_the_ranking_of_following_calls(host: ModuleHost) -> None:
    await host.install("by-title", "1.0.0", source=BY_TITLE)
    before, before_ranking = await host.rank(SHELF)

    await host.activate("by-title", "1.0.0")
    after, after_ranking = await host.rank(SHELF)

    assert before_ranking is not None and before_ranking.module == "by-sales"
    assert after_ranking is not None and (after_ranking.module, after_ranking.version) == ("by-title", "1.0.0")
    assert [book.title for book in after] == sorted(book.title for book in SHELF)
    assert ids(before) != ids(after)


@pytest.mark.anyio
async def test_two_versions_live_side_by_side_and_the_inactive_one_can_go(host: ModuleHost) -> None:
    await host.install("by-price", "1.0.0", bundled="by-price")
    await host.install(
        "by-price", "2.0.0", source="def rank(books):\n    return sorted(books, key=lambda b: -b['price'])\n"
    )
    await host.activate("by-price", "2.0.0")

    removed = await host.uninstall("by-price", "1.0.0")

    assert removed.reference == "by-price@1.0.0"
    assert [module.reference for module in host.modules()] == ["by-price@2.0.0", "by-sales@1.0.0"]
    assert ids((await host.rank(SHELF))[0])[0] == "00003"


@pytest.mark.anyio
async def test_the_active_module_cannot_be_uninstalled(host: ModuleHost) -> None:
    with pytest.raises(ModuleActive):
        await host.uninstall("by-sales", "1.0.0")
    assert host.active is not None and host.active.reference == "by-sales@1.0.0"


@pytest.mark.anyio
async def test_installing_the_same_code_twice_is_no_conflict(host: ModuleHost) -> None:
    again = await host.install("by-sales", "1.0.0", bundled="by-sales")
    assert again is host.installed("by-sales", "1.0.0")
    assert [module.reference for module in host.modules()] == ["by-sales@1.0.0"]


@pytest.mark.anyio
async def test_other_code_under_an_installed_version_and_missing_modules_are_refused(host: ModuleHost) -> None:
    with pytest.raises(ModuleExists, match="install yours as a new version"):
        await host.install("by-sales", "1.0.0", bundled="by-price")
    with pytest.raises(ModuleNotInstalled):
        await host.activate("by-sales", "2.0.0")
    with pytest.raises(ModuleNotInstalled):
        await host.uninstall("nothing", "1.0.0")
    with pytest.raises(ModuleNotInstalled, match="bundled modules"):
        await host.install("by-magic", "1.0.0", bundled="by-magic")
    with pytest.raises(InvalidRequest):
        await host.install("by-title", "1.0.0", source=BY_TITLE, bundled="by-sales")
    with pytest.raises(InvalidRequest):
        await host.install("By Title", "1.0.0", source=BY_TITLE)


BROKEN_MODULES = {
    "syntax error": ("def rank(books)\n    return books\n", "does not compile at line 1"),
    "raises while loading": ("import json\nraise RuntimeError('no config')\n", "RuntimeError: no config (line 2)"),
    "exits while loading": ("import sys\nsys.exit(3)\n", "SystemExit"),
    "no rank": ("def ranking(books):\n    return books\n", "must define a function rank(books)"),
    "rank is not callable": ("rank = 'by-sales'\n", "must define a function rank(books)"),
    "rank raises": ("def rank(books):\n    return sorted(books, key=lambda b: b['rating'])\n", "KeyError"),
    "wrong signature": ("def rank():\n    return []\n", "TypeError"),
    "returns a generator": ("def rank(books):\n    return (b for b in books)\n", "not generator"),
    "drops a book": ("def rank(books):\n    return books[1:]\n", "same books"),
    "duplicates a book": ("def rank(books):\n    return books[:1] + books[:-1]\n", "same books"),
    "returns ids": ("def rank(books):\n    return [b['id'] for b in books]\n", "same books"),
}


@pytest.mark.parametrize("broken", BROKEN_MODULES, ids=list(BROKEN_MODULES))
@pytest.mark.anyio
async def test_a_broken_module_is_refused_and_the_active_one_keeps_serving(host: ModuleHost, broken: str) -> None:
    source, complaint = BROKEN_MODULES[broken]

    with pytest.raises(ModuleRejected) as refused:
        await host.install("broken", "1.0.0", source=source)

    assert complaint in refused.value.message
    assert [module.reference for module in host.modules()] == ["by-sales@1.0.0"]
    ranked, ranking = await host.rank(SHELF)
    assert ranking is not None and ranking.module == "by-sales" and ranking.error is None
    assert ids(ranked)[0] == "00003"


@pytest.mark.anyio
async def test_a_module_that_fails_on_live_data_falls_back_to_catalogue_order(host: ModuleHost) -> None:
    picky = textwrap.dedent(
        """
        def rank(books):
            if any(book["sold"] > 1000 for book in books):
                raise ValueError("too many sales to count")
            return books
        """
    )
    await host.install("picky", "1.0.0", source=picky)
    await host.activate("picky", "1.0.0")
    busy_shelf = [book.model_copy(update={"sold": 5000}) for book in SHELF]

    ranked, ranking = await host.rank(busy_shelf)

    assert ids(ranked) == ids(busy_shelf)
    assert ranking is not None and ranking.error is not None and "too many sales" in ranking.error


@pytest.mark.anyio
async def test_a_module_cannot_change_the_books_it_is_given(host: ModuleHost) -> None:
    vandal = "def rank(books):\n    for book in books:\n        book['price'] = 0\n    return books\n"
    await host.install("vandal", "1.0.0", source=vandal)
    await host.activate("vandal", "1.0.0")

    ranked, _ = await host.rank(SHELF)

    assert [book.price for book in ranked] == [book.price for book in SHELF]


@pytest.mark.anyio
async def test_the_admin_api_switches_the_ranking_without_a_restart(monolith: httpx.AsyncClient) -> None:
    installed = await monolith.post(
        "/admin/modules", json={"name": "by-title", "version": "2.0.0", "source": BY_TITLE}, headers=ADMIN
    )
    activated = await monolith.post("/admin/modules/by-title/2.0.0/activate", headers=ADMIN)
    books = await monolith.get("/api/books")
    listed = (await monolith.get("/admin/modules", headers=ADMIN)).json()

    assert installed.status_code == 201 and installed.json()["active"] is False
    assert activated.status_code == 200 and activated.json()["active"] is True
    assert books.headers["x-bookstore-ranking"] == "by-title@2.0.0"
    titles = [book["title"] for book in books.json()["books"]]
    assert titles == sorted(titles)
    assert listed["active"] == "by-title@2.0.0"
    assert {module["reference"] for module in listed["modules"]} == {"by-sales@1.0.0", "by-title@2.0.0"}
    assert set(listed["bundled"]) == set(BUNDLED_MODULES)


@pytest.mark.anyio
async def test_the_admin_api_installs_bundled_modules_and_uninstalls_inactive_ones(monolith: httpx.AsyncClient) -> None:
    installed = await monolith.post(
        "/admin/modules",
        json={"name": "by-price", "version": "1.0.0", "bundled": "by-price", "activate": True},
        headers=ADMIN,
    )
    again = await monolith.post(
        "/admin/modules",
        json={"name": "by-price", "version": "1.0.0", "bundled": "by-price", "activate": True},
        headers=ADMIN,
    )
    other_code = await monolith.post(
        "/admin/modules", json={"name": "by-price", "version": "1.0.0", "source": BY_TITLE}, headers=ADMIN
    )
    refused = await monolith.delete("/admin/modules/by-price/1.0.0", headers=ADMIN)
    removed = await monolith.delete("/admin/modules/by-sales/1.0.0", headers=ADMIN)
    missing = await monolith.delete("/admin/modules/by-sales/1.0.0", headers=ADMIN)

    assert installed.status_code == 201 and installed.json()["origin"] == "bundled:by-price"
    assert again.status_code == 200 and again.json()["active"] is True  # a notebook run twice
    assert (other_code.status_code, other_code.json()["error"]) == (409, "module_exists")
    assert (await monolith.get("/api/books")).headers["x-bookstore-ranking"] == "by-price@1.0.0"
    assert (refused.status_code, refused.json()["error"]) == (409, "module_active")
    assert removed.status_code == 200
    assert (missing.status_code, missing.json()["error"]) == (404, "module_not_installed")


@pytest.mark.anyio
async def test_the_admin_api_refuses_a_broken_module_with_422(monolith: httpx.AsyncClient) -> None:
    response = await monolith.post(
        "/admin/modules",
        json={"name": "broken", "version": "1", "source": "def rank(books):\n    return 1/0\n"},
        headers=ADMIN,
    )

    assert response.status_code == 422
    assert response.json()["error"] == "module_rejected"
    assert "ZeroDivisionError" in response.json()["message"]
    assert (await monolith.get("/api/books")).headers["x-bookstore-ranking"] == "by-sales@1.0.0"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"name": "by-title", "version": "1"},
        {"name": "by-title", "version": "1", "source": BY_TITLE, "bundled": "by-sales"},
        {"name": "By_Title", "version": "1", "source": BY_TITLE},
        {"name": "by-title", "version": "", "source": BY_TITLE},
        {"name": "by-title", "version": "1 0", "source": BY_TITLE},
        {"name": "by-title", "version": "1", "source": ""},
        {"name": "by-title", "version": "1", "source": "#" * 70_000},
        {"name": "by-title", "version": "1", "source": 42},
        {"name": "by-title", "version": 1, "source": BY_TITLE},
    ],
)
async def test_the_admin_api_refuses_bad_install_requests(monolith: httpx.AsyncClient, body: object) -> None:
    response = await monolith.post("/admin/modules", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert response.json()["error"] in {"invalid_request", "module_rejected"}
    assert len((await monolith.get("/admin/modules", headers=ADMIN)).json()["modules"]) == 1


@pytest.mark.anyio
async def test_every_response_is_ranked_by_exactly_the_module_it_names(monolith: httpx.AsyncClient) -> None:
    await monolith.post("/admin/modules", json={"name": "by-title", "version": "1", "source": BY_TITLE}, headers=ADMIN)
    expected = {
        "by-sales@1.0.0": [book.id for book in CATALOG],  # nothing sold yet: ties broken by id
        "by-title@1": [book.id for book in sorted(CATALOG, key=lambda book: book.title)],
    }

    async def flip() -> None:
        for index in range(20):
            version = ("by-title/1", "by-sales/1.0.0")[index % 2]
            await monolith.post(f"/admin/modules/{version}/activate", headers=ADMIN)

    responses, _ = await asyncio.gather(asyncio.gather(*(monolith.get("/api/books") for _ in range(60))), flip())

    seen = set()
    for response in responses:
        reference = response.headers["x-bookstore-ranking"]
        seen.add(reference)
        assert [book["id"] for book in response.json()["books"]] == expected[reference]
    assert seen <= set(expected)
