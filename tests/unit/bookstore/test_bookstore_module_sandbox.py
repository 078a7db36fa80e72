"""Module code runs in its own process with a time limit: a slow or exiting module costs a ranking, not the service."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bookstore.catalog import CATALOG
from bookstore.errors import ModuleRejected
from bookstore.models import Book
from bookstore.modules.host import ModuleHost
from bookstore.modules.sandbox import ModuleSandbox
from bookstore.monolith import create_app as create_monolith
from tests.unit.bookstore.conftest import ADMIN, settings_for

pytestmark = pytest.mark.anyio

#: Short limits keep the tests quick; the defaults (5 s to load, 1 s to rank) only scale them.
LOAD_SECONDS = 1.0
RANK_SECONDS = 0.5

SHELF = [Book(id=book.id, title=book.title, price=book.price, stock=10_000, sold=0) for book in CATALOG]
#: The sample shelf a module is tried on at install has few sales; live data with many sales sets these off.
BUSY_SHELF = [book.model_copy(update={"sold": 5_000, "stock": 5_000}) for book in SHELF]


def on_live_data(statement: str) -> str:
    """A module that ranks the sample shelf fine, and runs `statement` when the shelf has sold a lot."""
    return textwrap.dedent(
        f"""
        import os, sys, time

        def rank(books):
            if any(book["sold"] > 1000 for book in books):
                {statement}
            return sorted(books, key=lambda book: book["title"])
        """
    )


def ids(books: list[Book]) -> list[str]:
    return [book.id for book in books]


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[ModuleHost]:
    sandbox = ModuleSandbox(load_seconds=LOAD_SECONDS, rank_seconds=RANK_SECONDS)
    host = ModuleHost(state_file=tmp_path / "modules.json", sandbox=sandbox)
    await host.start("by-sales")
    try:
        yield host
    finally:
        await host.close()


@pytest.mark.parametrize(
    ("statement", "complaint"),
    [
        ("time.sleep(3600)", "did not answer rank() within"),
        ("while True: pass", "did not answer rank() within"),
        ("sys.exit(4)", "SystemExit: 4"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("os._exit(9)", "exited (code 9)"),
        ("os.kill(os.getpid(), 9)", "exited (code -9)"),
    ],
    ids=["sleeps", "spins", "sys.exit", "KeyboardInterrupt", "os._exit", "SIGKILL"],
)
async def test_a_module_failing_on_live_data_falls_back_and_the_next_call_is_served(
    host: ModuleHost, statement: str, complaint: str
) -> None:
    await host.install("fragile", "1", source=on_live_data(statement))
    await host.activate("fragile", "1")

    ranked, ranking = await host.rank(BUSY_SHELF)
    calm, calm_ranking = await host.rank(SHELF)

    assert ids(ranked) == ids(BUSY_SHELF)
    assert ranking is not None and ranking.error is not None and complaint in ranking.error
    assert ids(calm) == ids(sorted(SHELF, key=lambda book: book.title))
    assert calm_ranking is not None and calm_ranking.error is None


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("import time\ntime.sleep(3600)\n", "did not finish loading within"),
        ("import os\nos._exit(0)\n", "exited (code 0)"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("import sys\nsys.exit()\n", "SystemExit"),
        ("def rank(books):\n    while True:\n        pass\n", "did not answer rank() within"),
        ("x = bytearray(4 * 1024**3)\n", "MemoryError"),
    ],
    ids=["sleeps", "os._exit", "KeyboardInterrupt", "sys.exit", "spins on the sample", "eats memory"],
)
async def test_a_module_that_does_not_load_properly_is_refused(host: ModuleHost, source: str, complaint: str) -> None:
    with pytest.raises(ModuleRejected) as refused:
        await host.install("bad", "1", source=source)

    assert complaint in refused.value.message
    assert [module.reference for module in host.modules()] == ["by-sales@1.0.0"]
    _, ranking = await host.rank(BUSY_SHELF)
    assert ranking is not None and ranking.error is None and ranking.module == "by-sales"


async def test_modules_from_source_run_in_another_process(host: ModuleHost) -> None:
    await host.install("whoami", "1", source=on_live_data("raise RuntimeError(f'pid {os.getpid()}')"))
    await host.activate("whoami", "1")

    _, ranking = await host.rank(BUSY_SHELF)

    assert ranking is not None and ranking.error is not None
    assert f"pid {host.sandbox.pid}" in ranking.error
    assert host.sandbox.pid is not None and host.sandbox.pid != __import__("os").getpid()


async def test_a_new_module_process_loads_again_every_module_the_old_one_had(host: ModuleHost) -> None:
    await host.install("by-title", "1", source=on_live_data("pass"))
    await host.install("killer", "1", source=on_live_data("os._exit(1)"))
    await host.activate("killer", "1")
    first_pid = host.sandbox.pid

    await host.rank(BUSY_SHELF)  # takes the module process down
    await host.activate("by-title", "1")
    ranked, ranking = await host.rank(BUSY_SHELF)

    assert ranking is not None and ranking.error is None
    assert ids(ranked) == ids(sorted(BUSY_SHELF, key=lambda book: book.title))
    assert host.sandbox.pid not in (None, first_pid)


async def test_installed_modules_and_the_active_one_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "modules.json"
    first = ModuleHost(state_file=state)
    await first.start("by-sales")
    await first.install("by-title", "2", source=on_live_data("pass"))
    await first.install("by-price", "1.0.0", bundled="by-price")
    await first.activate("by-title", "2")
    before = [(m.reference, m.origin, m.installed_at) for m in first.modules()]
    await first.close()

    second = ModuleHost(state_file=state)
    await second.start("by-stock")
    try:
        ranked, ranking = await second.rank(SHELF)
        after = [(m.reference, m.origin, m.installed_at) for m in second.modules()]
    finally:
        await second.close()

    assert after == before
    assert ranking is not None and (ranking.module, ranking.version, ranking.error) == ("by-title", "2", None)
    assert ids(ranked) == ids(sorted(SHELF, key=lambda book: book.title))


async def test_a_saved_module_that_no_longer_loads_leaves_the_default_active(tmp_path: Path) -> None:
    state = tmp_path / "modules.json"
    state.write_text(
        '{"active": "gone@1", "modules": [{"name": "gone", "version": "1", "origin": "source",'
        ' "description": "", "installed_at": 1.0, "source": "raise ImportError(\\"moved\\")"}]}'
    )
    host = ModuleHost(state_file=state)
    await host.start("by-price")
    try:
        references = [module.reference for module in host.modules()]
        active = host.active
    finally:
        await host.close()

    assert references == ["by-price@1.0.0"]
    assert active is not None and active.reference == "by-price@1.0.0"


async def test_health_and_the_shelf_answer_while_a_module_hangs(tmp_path: Path) -> None:
    """While one install is stuck in a module's top level, every other route is served."""
    app = create_monolith(settings_for("monolith", tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        app.state.modules.sandbox.load_seconds = 5 * LOAD_SECONDS
        install = asyncio.create_task(
            client.post(
                "/admin/modules",
                json={"name": "sleepy", "version": "1", "source": "import time\ntime.sleep(3600)\n"},
                headers=ADMIN,
            )
        )
        sandbox = app.state.modules.sandbox
        async with asyncio.timeout(LOAD_SECONDS):  # the bundled module needs none: this one starts it
            while sandbox.pid is None:
                await asyncio.sleep(0.01)
        health = await client.get("/health")
        shelf = await client.get("/api/books")
        pending = not install.done()
        refused = await install

    assert pending, "the install should still be waiting for the module while /health answers"
    assert health.status_code == 200 and shelf.status_code == 200
    assert shelf.json()["ranking"] == {"module": "by-sales", "version": "1.0.0", "error": None}
    assert (refused.status_code, refused.json()["error"]) == (422, "module_rejected")


async def test_an_exiting_module_gives_a_json_answer_not_a_500(tmp_path: Path) -> None:
    app = create_monolith(settings_for("monolith", tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        source = "import sys\n\ndef rank(books):\n    sys.exit('bye')\n"
        refused = await client.post(
            "/admin/modules", json={"name": "quitter", "version": "1", "source": source}, headers=ADMIN
        )
        health = await client.get("/health")

    assert (refused.status_code, refused.json()["error"]) == (422, "module_rejected")
    assert "SystemExit: bye (line 4)" in refused.json()["message"]
    assert health.status_code == 200
