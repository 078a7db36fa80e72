"""What every bookstore HTTP service shares: identity headers, tracing, errors as JSON, health.

:func:`create_service_app` builds the FastAPI app the monolith and each microservice add their
routes to. Every response, errors included, carries ``x-bookstore-service`` and
``x-bookstore-version`` so a checker can count which version served it; every refusal is a JSON
body ``{"error": code, "message": ...}`` with a 4xx or 5xx status, never a traceback, and carries
its code in ``x-bookstore-error`` too (so spans record it). A business refusal (4xx) also says
which service decided it, ``"refused_by"``: a storefront passing on stock's or balance's refusal
keeps their name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, ParamSpec, TypeVar

from anyio import to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookstore.errors import BookstoreError, PayloadTooLarge
from bookstore.settings import Settings
from bookstore.tracing import ERROR_HEADER, TRACE_ID_PATTERN, Span, SpanRecorder, TracingMiddleware
from bookstore.txn.faults import FaultInjectionMiddleware

__all__ = ["MAX_BODY_BYTES", "SERVICE_HEADER", "VERSION_HEADER", "create_service_app", "in_worker_thread"]

SERVICE_HEADER = "x-bookstore-service"
VERSION_HEADER = "x-bookstore-version"
# Generous for a purchase or a ranking module's source, small enough that nobody can fill memory.
MAX_BODY_BYTES = 256 * 1024

_log = logging.getLogger("bookstore")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def in_worker_thread(endpoint: Callable[_Params, _Result]) -> Callable[_Params, Coroutine[Any, Any, _Result]]:
    """A blocking endpoint (SQLite) as an async one that runs its body in a worker thread.

    FastAPI runs a plain ``def`` endpoint in a worker thread, then goes back to one to validate its
    answer: two thread handoffs per request, each a wake-up of a thread and then of the event loop.
    This wrapper makes one, and the answer is validated on the loop. FastAPI reads the parameters
    through ``functools.wraps``, so the endpoint is declared exactly as before.
    """

    @functools.wraps(endpoint)
    async def run_in_worker_thread(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        return await to_thread.run_sync(functools.partial(endpoint, *args, **kwargs))

    return run_in_worker_thread


class Health(BaseModel):
    status: str
    service: str
    version: str


class SpanList(BaseModel):
    service: str
    spans: list[Span]


class IdentityHeadersMiddleware:
    """Stamps the serving service and version on every response."""

    def __init__(self, app: ASGIApp, *, service: str, version: str) -> None:
        self.app = app
        self.headers = {SERVICE_HEADER: service, VERSION_HEADER: version}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_identity(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_identity)


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with a JSON 413, whether or not they declare a length.

    (Starlette's own limiter answers in plain text, without the bookstore's headers.)
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"request bodies are limited to {self.limit} bytes", limit=self.limit)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _error(too_large.to_payload(), too_large.status_code)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # An HTTPException, because FastAPI turns anything else raised while reading a body into a 400.
                raise HTTPException(too_large.status_code, detail=too_large.message)
            return message

        await self.app(scope, receive_within_limit, send)


def create_service_app(settings: Settings, *, title: str, lifespan: Lifespan | None = None) -> FastAPI:
    """A FastAPI app with the bookstore's headers, tracing, JSON errors, ``/health`` and ``/debug/spans``."""
    app = FastAPI(
        title=title,
        version=settings.version,
        lifespan=lifespan,
    )
    recorder = SpanRecorder(settings.span_limit)
    app.state.span_recorder = recorder
    app.add_middleware(BodySizeLimitMiddleware, limit=MAX_BODY_BYTES)
    app.add_middleware(FaultInjectionMiddleware, enabled=settings.lab_mode)
    # Added last = outermost: the identity headers also land on responses tracing saw fail.
    app.add_middleware(TracingMiddleware, service=settings.service, version=settings.version, recorder=recorder)
    app.add_middleware(IdentityHeadersMiddleware, service=settings.service, version=settings.version)
    _add_error_handlers(app, settings.service)

    @app.get("/health", tags=["operations"])
    async def health() -> Health:
        """Liveness and readiness: the process serves requests."""
        return Health(status="ok", service=settings.service, version=settings.version)

    @app.get("/debug/spans", tags=["operations"])
    async def spans(
        trace_id: Annotated[str | None, Query(pattern=TRACE_ID_PATTERN, description="32 lowercase hex digits")] = None,
    ) -> SpanList:
        """The spans this process still remembers, optionally of one trace only."""
        return SpanList(service=settings.service, spans=recorder.spans(trace_id))

    return app


def _error(payload: dict[str, Any], status_code: int, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error whose code also travels in ERROR_HEADER."""
    return JSONResponse(payload, status_code=status_code, headers={**(headers or {}), ERROR_HEADER: payload["error"]})


def _add_error_handlers(app: FastAPI, service: str) -> None:
    async def bookstore_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BookstoreError)
        payload = exc.to_payload()
        if exc.status_code < 500:
            payload.setdefault("refused_by", service)
        return _error(payload, exc.status_code, exc.headers or None)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = [_describe_field_error(error) for error in exc.errors()]
        summary = "; ".join(f"{field['location']}: {field['message']}" for field in fields[:3])
        return _error({"error": "invalid_request", "message": f"invalid request: {summary}", "fields": fields}, 422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return _error({"error": code, "message": str(exc.detail)}, exc.status_code, exc.headers)

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return _error(
            {"error": "internal_error", "message": "the bookstore failed unexpectedly; see the service's log"}, 500
        )

    app.add_exception_handler(BookstoreError, bookstore_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def _describe_field_error(error: Any) -> dict[str, str]:
    """One validation error without the offending input, which may be huge or private."""
    location = ".".join(str(part) for part in error.get("loc", ()))
    return {"location": location, "message": str(error.get("msg", "invalid")), "type": str(error.get("type", ""))}
