"""Building a call tree from spans, and collecting spans from services that may not answer."""

from __future__ import annotations

import socket

import pytest

from bookstore.calltree import CallTree, build_call_tree, collect_trace
from bookstore.tracing import Span, TraceContext

TRACE = "1" * 32


def span(span_id: str, parent_id: str | None, start: float, service: str = "stock") -> Span:
    return Span(
        service=service,
        version="v1",
        operation=f"GET /{span_id}",
        trace_id=TRACE,
        span_id=span_id,
        parent_id=parent_id,
        start=start,
        duration_ms=1.0,
        status=200,
        error=False,
    )


def test_children_hang_under_their_parent_in_start_order() -> None:
    spans = [
        span("c2", "root", 3.0),
        span("root", None, 1.0, "storefront"),
        span("c1", "root", 2.0),
        span("g", "c1", 2.5),
    ]

    (root,) = build_call_tree(spans)

    assert root.span.span_id == "root"
    assert [child.span.span_id for child in root.children] == ["c1", "c2"]
    assert [(depth, item.span_id) for depth, item in root.walk()] == [(0, "root"), (1, "c1"), (2, "g"), (1, "c2")]


def test_a_span_whose_parent_was_not_collected_is_a_root_and_duplicates_count_once() -> None:
    spans = [span("a", "caller-outside", 1.0), span("b", None, 2.0), span("b", None, 2.0)]

    roots = build_call_tree(spans)

    assert [root.span.span_id for root in roots] == ["a", "b"]


def test_render_indents_calls_and_lists_what_could_not_be_collected() -> None:
    tree = CallTree(
        TRACE, build_call_tree([span("root", None, 1.0, "storefront"), span("c", "root", 2.0)]), {"http://x": "down"}
    )

    assert tree.render().splitlines() == [
        "storefront GET /root 200 (1.0 ms)",
        "  stock GET /c 200 (1.0 ms)",
        "(no spans from http://x: down)",
    ]
    assert [item.span_id for item in tree.spans()] == ["root", "c"]


def test_collecting_from_a_service_that_is_down_reports_it_instead_of_failing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    tree = collect_trace(TRACE, [f"http://127.0.0.1:{port}"], timeout=2)

    assert tree.roots == ()
    assert list(tree.unreachable) == [f"http://127.0.0.1:{port}"]


def test_a_malformed_trace_id_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        collect_trace("not-a-trace", ["http://127.0.0.1:1"])


def test_a_valid_traceparent_continues_its_trace_with_a_new_span() -> None:
    context = TraceContext.start(f"00-{TRACE}-{'2' * 16}-01")

    assert (context.trace_id, context.parent_id) == (TRACE, "2" * 16)
    assert context.span_id != "2" * 16
    assert context.traceparent == f"00-{TRACE}-{context.span_id}-01"
