"""Follow one request across the bookstore's services: start a W3C trace, then draw its call tree.

    trace = start_trace()
    ctx.http.post("http://storefront/api/purchase", json=order, headers=trace.headers)
    call_tree(trace, ["storefront", "stock", "balance"])     # shows who called whom, and how long it took

Every bookstore service records a span per request and serves them at /debug/spans; the
storefront passes the `traceparent` on, so the spans of stock and balance join the purchase's
trace. `call_tree` collects them through the service network (bookstore.calltree does the rest).
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bookstore.calltree import CallTree, collect_trace
from labkit._default import resolve

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["CallTreeView", "Trace", "call_tree", "start_trace"]


@dataclass(frozen=True)
class Trace:
    """A trace the notebook starts: send `headers` with a request and it becomes the trace's root caller."""

    trace_id: str
    span_id: str

    @property
    def traceparent(self) -> str:
        # Version 00, sampled (flags 01): https://www.w3.org/TR/trace-context/#traceparent-header
        return f"00-{self.trace_id}-{self.span_id}-01"

    @property
    def headers(self) -> dict[str, str]:
        return {"traceparent": self.traceparent}


def start_trace() -> Trace:
    """A fresh trace id and a span id for the notebook as the caller (random, never all zeros)."""
    return Trace(trace_id=_nonzero_hex(16), span_id=_nonzero_hex(8))


def _nonzero_hex(size: int) -> str:
    while True:
        value = secrets.token_hex(size)
        if value.strip("0"):
            return value


@dataclass(frozen=True)
class CallTreeView:
    """A call tree as the notebook shows it: indented text, one span per line."""

    tree: CallTree

    def __str__(self) -> str:
        return f"trace {self.tree.trace_id}\n{self.tree.render()}"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def call_tree(trace: Trace | str, services: Iterable[str], *, connection: Context | None = None) -> CallTreeView:
    """Collect `trace`'s spans from each named Service (`http://<name>`) and draw them as a call tree."""
    ctx = resolve(connection)
    trace_id = trace.trace_id if isinstance(trace, Trace) else trace
    tree = collect_trace(trace_id, [f"http://{name}" for name in services], client=ctx.http)
    return CallTreeView(tree)
