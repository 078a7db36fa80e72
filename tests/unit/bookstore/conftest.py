"""Bookstore apps served in-process over httpx's ASGI transport, each with its own temp database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bookstore.monolith import create_app as create_monolith
from bookstore.services import balance, stock, storefront
from bookstore.services.clients import BalanceClient, StockClient
from bookstore.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: The admin token every test app reads from its token file, and the header that sends it.
ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def settings_for(service: str, data_dir: Path) -> Settings:
    """A service's settings with its data in ``data_dir`` and ``ADMIN_TOKEN`` in its admin token file."""
    token_file = data_dir / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    return Settings(service=service, data_dir=data_dir, bind="127.0.0.1", version="v-test", admin_token_file=token_file)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[[str], Settings]:
    """Settings for a service of this test, with its data in the test's temp dir."""
    return lambda service: settings_for(service, tmp_path)


async def serve(stack: AsyncExitStack, app: FastAPI) -> httpx.AsyncClient:
    """Run ``app``'s lifespan for the test and return a client that talks to it in-process."""
    await stack.enter_async_context(app.router.lifespan_context(app))
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    )


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[FastAPI], Awaitable[httpx.AsyncClient]]]:
    """Serve apps in-process until the test ends: ``client = await serve_app(app)``."""
    async with AsyncExitStack() as stack:
        yield lambda app: serve(stack, app)


@pytest.fixture
async def monolith(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        yield await serve(stack, create_monolith(settings_for("monolith", tmp_path)))


@dataclass
class Services:
    """The storefront and, behind it, the real stock and balance apps."""

    storefront: httpx.AsyncClient
    stock: httpx.AsyncClient
    balance: httpx.AsyncClient
    storefront_app: FastAPI
    stock_app: FastAPI
    balance_app: FastAPI


@asynccontextmanager
async def open_services(data_dir: Path) -> AsyncIterator[Services]:
    stock_app = stock.create_app(settings_for("stock", data_dir))
    balance_app = balance.create_app(settings_for("balance", data_dir))
    storefront_app = storefront.create_app(
        settings_for("storefront", data_dir),
        stock=StockClient("http://stock", timeout=5, transport=httpx.ASGITransport(app=stock_app)),
        balance=BalanceClient("http://balance", timeout=5, transport=httpx.ASGITransport(app=balance_app)),
    )
    async with AsyncExitStack() as stack:
        stock_client = await serve(stack, stock_app)
        balance_client = await serve(stack, balance_app)
        storefront_client = await serve(stack, storefront_app)
        yield Services(storefront_client, stock_client, balance_client, storefront_app, stock_app, balance_app)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async with open_services(tmp_path) as running:
        yield running


@pytest.fixture(params=["monolith", "services"])
async def public(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The public API, served once by the monolith and once by the storefront in front of the services."""
    if request.param == "monolith":
        async with AsyncExitStack() as stack:
            yield await serve(stack, create_monolith(settings_for("monolith", tmp_path)))
    else:
        async with open_services(tmp_path) as running:
            yield running.storefront
