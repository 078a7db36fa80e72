"""The bookstore's public HTTP API and page, the same whether a monolith or a storefront serves it.

=====  =======================  ===========================================================
GET    ``/``                    the storefront page (relative URLs: works under any prefix)
GET    ``/api/books``           books ranked by the active module; ``x-bookstore-ranking``
POST   ``/api/users``           ``{"name"}`` opens an account with the initial balance
GET    ``/api/users/{name}``    balance and books owned
POST   ``/api/purchase``        ``{"user", "book", "count"}`` buys books; ``Idempotency-Key`` makes a
                                retry answer the first attempt's outcome (with a coordinator)
*      ``/admin/modules...``    ranking modules, for holders of the admin token: :mod:`bookstore.modules.admin`
=====  =======================  ===========================================================

A :class:`Shop` does the work: the monolith's runs local transactions, the storefront's calls
the stock and balance services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Protocol

from fastapi import FastAPI, Header, Path, Response, status
from fastapi.responses import HTMLResponse

from bookstore.models import Book, BookList, NewUser, Order, PurchaseRequest, User, UserName
from bookstore.modules.admin import AdminToken, create_admin_router
from bookstore.modules.host import ModuleHost, bundled_source
from bookstore.settings import Settings
from bookstore.web import Lifespan, create_service_app

__all__ = ["IDEMPOTENCY_HEADER", "RANKING_HEADER", "Shop", "create_public_app"]

RANKING_HEADER = "x-bookstore-ranking"
#: As in the IETF draft "The Idempotency-Key HTTP Header Field": one key per purchase, any visible ASCII.
IDEMPOTENCY_HEADER = "Idempotency-Key"


class Shop(Protocol):
    """What the public API needs from whatever keeps the books and the money."""

    async def list_books(self) -> list[Book]: ...

    async def create_user(self, name: str) -> User: ...

    async def get_user(self, name: str) -> User: ...

    async def purchase(self, request: PurchaseRequest, idempotency_key: str | None = None) -> Order: ...


def create_public_app(settings: Settings, shop: Shop, *, title: str, lifespan: Lifespan | None = None) -> FastAPI:
    """The public API served by ``shop``, ranking with a module host that starts on ``settings.ranking``.

    The module host starts with the app (after ``lifespan``) and restores the modules it had in
    ``settings.modules_path``; its module process stops with the app.
    """
    from bookstore.page import STOREFRONT_PAGE  # the page is only needed by processes that serve it

    bundled_source(settings.ranking)  # an unknown BOOKSTORE_RANKING stops the process before it serves
    modules = ModuleHost(state_file=settings.modules_path)

    @asynccontextmanager
    async def lifespan_with_modules(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            stack.push_async_callback(modules.close)
            await modules.start(settings.ranking)
            yield

    app = create_service_app(settings, title=title, lifespan=lifespan_with_modules)
    app.state.modules = modules
    app.include_router(create_admin_router(modules, AdminToken(settings.admin_token_file)))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return STOREFRONT_PAGE

    @app.get("/api/books", tags=["bookstore"])
    async def list_books(response: Response) -> BookList:
        """Every book with price (fen), stock and copies sold, ranked by the active ranking module."""
        books, ranking = await modules.rank(await shop.list_books())
        if ranking is not None:
            response.headers[RANKING_HEADER] = f"{ranking.module}@{ranking.version}"
        return BookList(books=books, ranking=ranking)

    @app.post("/api/users", status_code=status.HTTP_201_CREATED, tags=["bookstore"])
    async def create_user(request: NewUser) -> User:
        """Open an account holding the initial balance; 409 if the name is taken."""
        return await shop.create_user(request.name)

    @app.get("/api/users/{name}", tags=["bookstore"])
    async def get_user(name: Annotated[UserName, Path()]) -> User:
        """A user's balance (fen) and the books they own."""
        return await shop.get_user(name)

    @app.post("/api/purchase", status_code=status.HTTP_201_CREATED, tags=["bookstore"])
    async def purchase(
        request: PurchaseRequest,
        idempotency_key: Annotated[
            str | None, Header(alias=IDEMPOTENCY_HEADER, pattern=r"^[\x21-\x7e]{1,255}$")
        ] = None,
    ) -> Order:
        """Buy books: 404 for an unknown user or book, 409 for too little stock or money, else the order.

        With an ``Idempotency-Key``, asking again with the same key answers what the first request got
        (its order, or its refusal), and never charges twice.
        """
        return await shop.purchase(request, idempotency_key)

    return app
