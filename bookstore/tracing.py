"""W3C Trace Context for the bookstore: every request is a span, kept in memory and served back.

An incoming ``traceparent`` header (``00-<trace id>-<parent span id>-<flags>``) joins the request
to its caller's trace; without one (or with a malformed one, as the spec requires) a new trace
starts. While the request runs, :func:`outgoing_headers` gives the headers to put on calls to
other services so their spans become children of this one. Each response says which span served
it in a ``traceresponse`` header (W3C Trace Context level 2), so a caller can find the trace.

Finished spans go to a bounded :class:`SpanRecorder`; ``GET /debug/spans?trace_id=...`` serves
them and :mod:`bookstore.calltree` puts the spans of several services back into one call tree.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "PROPAGATED_HEADERS",
    "TRACE_ID_PATTERN",
    "Span",
    "SpanRecorder",
    "TraceContext",
    "TracingMiddleware",
    "current_trace",
    "outgoing_headers",
]

TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    """Where the current request sits in its trace."""

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str = "01"

    @classmethod
    def start(cls, traceparent: str | None) -> TraceContext:
        """A new span: a child of ``traceparent`` if it is valid, else the root of a new trace."""
        parent = _parse_traceparent(traceparent)
        span_id = _new_id(8)
        if parent is None:
            return cls(trace_id=_new_id(16), span_id=span_id, parent_id=None)
        trace_id, parent_id, flags = parent
        return cls(trace_id=trace_id, span_id=span_id, parent_id=parent_id, flags=flags)

    @property
    def traceparent(self) -> str:
        """This span as a ``traceparent`` value, for the calls it makes."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def _new_id(size: int) -> str:
    return secrets.token_hex(size)


def _parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) from a valid header; None for anything the spec says to ignore."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE_ID or parent_id == _INVALID_SPAN_ID:
        return None
    return trace_id, parent_id, flags


_current: ContextVar[TraceContext | None] = ContextVar("bookstore_trace", default=None)
_propagated: ContextVar[dict[str, str] | None] = ContextVar("bookstore_propagated_headers", default=None)

# Headers a mesh routes on or correlates by: forwarding them lets an Istio rule written for the
# storefront's callers (canary by header, x-request-id) apply to the calls it makes in turn. A
# purchase's x-bookstore-fault (lab mode, bookstore.txn.faults) travels the same way.
PROPAGATED_HEADERS = ("tracestate", "baggage", "x-request-id", "end-user", "x-bookstore-canary", "x-bookstore-fault")


def current_trace() -> TraceContext | None:
    """The span of the request being served, if any."""
    return _current.get()


def outgoing_headers() -> dict[str, str]:
    """Headers for a call made while serving the current request: ``traceparent`` and friends."""
    context = _current.get()
    if context is None:
        return {}
    return {**(_propagated.get() or {}), "traceparent": context.traceparent}


#: The response header that carries a refusal's code (``insufficient_balance`` ...): spans record it.
ERROR_HEADER = "x-bookstore-error"


class Span(BaseModel):
    """One request served by one service; ``error_type`` is the refusal's code when it refused."""

    model_config = ConfigDict(frozen=True)

    service: str
    version: str
    operation: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start: float
    duration_ms: float
    status: int
    error: bool
    error_type: str | None = None


class SpanRecorder:
    """The most recent ``limit`` spans of this process; older ones are forgotten first."""

    def __init__(self, limit: int) -> None:
        self._spans: deque[Span] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def record(self, span: Span) -> None:
        with self._lock:
            self._spans.append(span)

    def spans(self, trace_id: str | None = None) -> list[Span]:
        """The kept spans, oldest first, optionally of one trace only."""
        with self._lock:
            kept = list(self._spans)
        return [span for span in kept if trace_id is None or span.trace_id == trace_id]


class TracingMiddleware:
    """Records a span for every HTTP request and makes its trace context current while it runs."""

    def __init__(self, app: ASGIApp, *, service: str, version: str, recorder: SpanRecorder) -> None:
        self.app = app
        self.service = service
        self.version = version
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        context = TraceContext.start(headers.get("traceparent"))
        trace_token = _current.set(context)
        propagated_token = _propagated.set(_pick(headers, PROPAGATED_HEADERS))
        started_at = time.time()
        started = time.perf_counter()
        status = 500
        error_type: str | None = None

        async def send_with_traceresponse(message: Message) -> None:
            nonlocal status, error_type
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["traceresponse"] = context.traceparent
                error_type = headers.get(ERROR_HEADER)
            await send(message)

        try:
            await self.app(scope, receive, send_with_traceresponse)
        finally:
            _current.reset(trace_token)
            _propagated.reset(propagated_token)
            self.recorder.record(
                Span(
                    service=self.service,
                    version=self.version,
                    operation=f"{scope['method']} {_route_template(scope)}",
                    trace_id=context.trace_id,
                    span_id=context.span_id,
                    parent_id=context.parent_id,
                    start=started_at,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    status=status,
                    error=status >= 500,
                    error_type=error_type,
                )
            )


def _pick(headers: dict[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: headers[name] for name in names if name in headers}


def _route_template(scope: Scope) -> str:
    """``/api/users/{name}`` rather than ``/api/users/alice``, so operations group across requests."""
    route = scope.get("route")
    path_format = getattr(route, "path_format", None)
    return path_format if isinstance(path_format, str) else scope["path"]
