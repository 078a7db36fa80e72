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
from bookstore.tracing import Span
from labkit._default import resolve

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["CallTreeView", "Trace", "call_tree", "start_trace", "waterfall_html"]


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


#: Bar colours by service, so one service reads as one colour down the waterfall.
SERVICE_COLOURS = ("#3b6ea8", "#2f8f5b", "#c0792c", "#8a4fb0", "#b8434e", "#4b8f99")
#: Where the time axis gets a tick, as fractions of the trace's duration.
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class CallTreeView:
    """A call tree as the notebook shows it: a waterfall of spans on a time axis (as Jaeger draws a
    trace), with the indented text tree for terminals and as the plain-text fallback."""

    tree: CallTree

    def __str__(self) -> str:
        return f"trace {self.tree.trace_id}\n{self.tree.render()}"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        rows = [(depth, span) for root in self.tree.roots for depth, span in root.walk()]
        if not rows:
            return f"<pre>{html.escape(str(self))}</pre>"
        return waterfall_html(self.tree.trace_id, rows, self.tree.unreachable)


def waterfall_html(trace_id: str, rows: list[tuple[int, Span]], unreachable: dict[str, str]) -> str:
    """Each span a bar: its left edge when it started, its width how long it took, indented under its caller."""
    begin = min(span.start for _, span in rows)
    end = max(span.start + span.duration_ms / 1000 for _, span in rows)
    total = max(end - begin, 1e-6)
    services = sorted({span.service for _, span in rows})
    colour = {name: SERVICE_COLOURS[i % len(SERVICE_COLOURS)] for i, name in enumerate(services)}
    axis = "".join(
        f'<span style="position:absolute;left:{tick * 100:.1f}%;transform:translateX(-{tick * 100:.0f}%)">'
        f"{tick * total * 1000:.0f} ms</span>"
        for tick in TICKS
    )
    lines = [
        f'<div class="labkit-waterfall" style="font:12px sans-serif;max-width:60em">'
        f"<div><b>trace {html.escape(trace_id)}</b> · {total * 1000:.1f} ms</div>",
        f'<div style="display:flex"><div style="width:22em"></div>'
        '<div style="flex:1;position:relative;height:1.4em;color:#666;border-bottom:1px solid #ccc">'
        f"{axis}</div></div>",
    ]
    for depth, span in rows:
        left = (span.start - begin) / total * 100
        width = max(span.duration_ms / 1000 / total * 100, 0.5)
        failed = span.status >= 400
        label = f"{span.service} {span.operation}"
        lines.append(
            '<div class="labkit-span" style="display:flex;align-items:center;height:1.6em">'
            f'<div style="width:22em;padding-left:{depth * 1.2:.1f}em;white-space:nowrap;overflow:hidden;'
            f'text-overflow:ellipsis" title="{html.escape(label)}">{html.escape(label)}</div>'
            '<div style="flex:1;position:relative;height:1.1em">'
            f'<div style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;height:100%;'
            f"background:{colour[span.service]};border-radius:2px;"
            f'{"outline:2px solid #c62828;" if failed else ""}"></div>'
            f'<span style="position:absolute;left:{min(left + width, 85):.2f}%;padding-left:4px;white-space:nowrap">'
            f"{span.duration_ms:.1f} ms · {span.status}</span></div></div>"
        )
    lines += [
        f'<div style="color:#b26a00">(no spans from {html.escape(url)}: {html.escape(reason)})</div>'
        for url, reason in unreachable.items()
    ]
    lines.append("</div>")
    return "".join(lines)


def call_tree(trace: Trace | str, services: Iterable[str], *, connection: Context | None = None) -> CallTreeView:
    """Collect `trace`'s spans from each named Service (`http://<name>`) and draw them as a call tree."""
    ctx = resolve(connection)
    trace_id = trace.trace_id if isinstance(trace, Trace) else trace
    tree = collect_trace(trace_id, [f"http://{name}" for name in services], client=ctx.http)
    return CallTreeView(tree)
