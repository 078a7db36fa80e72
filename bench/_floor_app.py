"""The purchase path's shapes with nothing inside: the floor under ``bench_hop_floor``'s ratios.

A bookstore service app (:func:`bookstore.web.create_service_app`: the same FastAPI middlewares,
uvicorn with httptools, access log) whose endpoints do no work. Its outgoing calls use the
storefront's own client (:class:`bookstore.services.clients.ServiceClient`), to the URLs the
storefront's settings name (``BOOKSTORE_STOCK_URL``, ``BOOKSTORE_BALANCE_URL``, ``BOOKSTORE_TC_URL``):

=====  ==========================  ==============================================================
POST   ``/floor/answer``           answers at once: one exchange, as the monolith's purchase is
POST   ``/floor/sequence``         balance, then stock: lab 02's purchase (two calls in a row)
POST   ``/floor/transaction``      tc, then stock and balance together, then tc: lab 03's purchase
=====  ==========================  ==============================================================

    FLOOR_SERVICE=stock python -m bench._floor_app    # PORT, BIND ... as for any bookstore service

``FLOOR_SERVICE`` says which of the purchase's services it stands in for (storefront by default).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from bookstore.services.clients import ServiceClient
from bookstore.settings import Settings
from bookstore.web import create_service_app

ANSWER = "/floor/answer"
SEQUENCE = "/floor/sequence"
TRANSACTION = "/floor/transaction"


class Nothing(BaseModel):
    """What every floor endpoint takes and gives: a body as small as a purchase's, parsed and written."""

    user: str = "bench"
    book: str = "00002"
    count: int = 1


def create_app(settings: Settings) -> FastAPI:
    clients = {
        name: ServiceClient(name, url, timeout=settings.http_timeout)
        for name, url in (("stock", settings.stock_url), ("balance", settings.balance_url), ("tc", settings.tc_url))
        if url
    }

    @asynccontextmanager
    async def closing_clients(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for client in clients.values():
                await client.aclose()

    app = create_service_app(settings, title="Floor of the purchase path", lifespan=closing_clients)

    async def call(name: str, body: Nothing) -> Nothing:
        return await clients[name].call(Nothing, "POST", ANSWER, body)

    @app.post(ANSWER)
    async def answer(body: Nothing) -> Nothing:
        return body

    @app.post(SEQUENCE)
    async def sequence(body: Nothing) -> Nothing:
        await call("balance", body)
        return await call("stock", body)

    @app.post(TRANSACTION)
    async def transaction(body: Nothing) -> Nothing:
        await call("tc", body)
        await asyncio.gather(call("stock", body), call("balance", body))
        return await call("tc", body)

    return app


if __name__ == "__main__":
    from bookstore.serve import main

    main(os.environ.get("FLOOR_SERVICE", "storefront"), create_app)
