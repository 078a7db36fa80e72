"""Put one request's spans from several services back together as a call tree.

Each service keeps its own spans (see :mod:`bookstore.tracing`) and serves them at
``GET /debug/spans?trace_id=...``. :func:`collect_trace` asks every given service for one trace's
spans and :func:`build_call_tree` links them child to parent::

    tree = collect_trace(trace_id, ["http://storefront", "http://stock", "http://balance"])
    print(tree.render())
    # storefront POST /api/purchase 201 (12.4 ms)
    #   stock GET /api/books/{book_id} 200 (2.1 ms)
    #   balance POST /api/payments 201 (3.0 ms)
    #   stock POST /api/orders 201 (2.7 ms)

A Service URL reaches one replica only; pass each pod's address to see the spans of all replicas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import httpx
from pydantic import BaseModel, ValidationError

from bookstore.tracing import TRACE_ID_PATTERN, Span

__all__ = ["CallTree", "SpanNode", "build_call_tree", "collect_trace"]


class _SpanList(BaseModel):
    spans: list[Span]


@dataclass(frozen=True)
class SpanNode:
    """A span and the spans of the calls it made, in the order they started."""

    span: Span
    children: tuple[SpanNode, ...] = ()

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Span]]:
        """This span and all below it, depth first, with their depth in the tree."""
        yield depth, self.span
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass(frozen=True)
class CallTree:
    """One trace as a forest: usually one root, more if a caller's spans could not be collected."""

    trace_id: str
    roots: tuple[SpanNode, ...]
    unreachable: dict[str, str] = field(default_factory=dict)

    def spans(self) -> list[Span]:
        """Every span in the tree, depth first."""
        return [span for root in self.roots for _, span in root.walk()]

    def render(self) -> str:
        """The tree as indented text, one span per line."""
        lines = [
            f"{'  ' * depth}{span.service} {span.operation} {span.status} ({span.duration_ms:.1f} ms)"
            for root in self.roots
            for depth, span in root.walk()
        ]
        lines += [f"(no spans from {url}: {reason})" for url, reason in self.unreachable.items()]
        return "\n".join(lines)


def build_call_tree(spans: Iterable[Span]) -> tuple[SpanNode, ...]:
    """Link spans to their parents; spans whose parent is missing become roots. Duplicates count once."""
    by_id = {span.span_id: span for span in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in by_id.values():
        if span.parent_id is not None and span.parent_id in by_id:
            children.setdefault(span.parent_id, []).append(span)
        else:
            roots.append(span)

    def node(span: Span) -> SpanNode:
        below = sorted(children.get(span.span_id, ()), key=lambda child: child.start)
        return SpanNode(span, tuple(node(child) for child in below))

    return tuple(node(root) for root in sorted(roots, key=lambda root: root.start))


def collect_trace(
    trace_id: str, service_urls: Iterable[str], *, client: httpx.Client | None = None, timeout: float = 5.0
) -> CallTree:
    """Fetch ``trace_id``'s spans from every service URL and build the call tree.

    A service that cannot be reached or answers nonsense is listed in ``unreachable`` with the
    reason instead of failing the whole collection: a trace of a failing call is worth seeing.
    """
    if not re.match(TRACE_ID_PATTERN, trace_id):
        raise ValueError(f"a trace id is 32 lowercase hex digits, not {trace_id!r}")
    own_client = client is None
    http = client or httpx.Client(timeout=timeout, trust_env=True)
    spans: list[Span] = []
    unreachable: dict[str, str] = {}
    try:
        for url in service_urls:
            try:
                response = http.get(f"{url.rstrip('/')}/debug/spans", params={"trace_id": trace_id})
                response.raise_for_status()
                spans += _SpanList.model_validate_json(response.content).spans
            except httpx.HTTPError as exc:
                unreachable[url] = str(exc) or type(exc).__name__
            except ValidationError:
                unreachable[url] = "the answer was not a list of spans"
    finally:
        if own_client:
            http.close()
    return CallTree(trace_id=trace_id, roots=build_call_tree(spans), unreachable=unreachable)
