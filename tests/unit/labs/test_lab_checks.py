"""Labs 01 and 02 without a cluster: the invariants, the notebooks' agreement with the checks, traces, links."""

from __future__ import annotations

import json
import re

import pytest

from bookstore.tracing import TraceContext
from checkers import find_lab
from checkers.lab01_monolith import BUYER, ShopState
from labkit.jupyter_proxy import page_link, page_path, service_url
from labkit.release import SOLUTIONS
from labkit.traces import start_trace

LABS = {"01": "01-monolith", "02": "02-microservices"}
#: Labs whose notebook grades every check in order (lab 05 sells nothing, so it is not in LABS).
GRADED_LABS = {**LABS, "05": "05-mesh"}


def shelf(sold: dict[str, int] | None = None) -> dict[str, dict[str, int | str]]:
    """Two books as /api/books shows them, with `sold` copies gone from each by id."""
    sold = sold or {}
    prices = {"00001": 9900, "00002": 6900}
    return {
        book_id: {"id": book_id, "price": price, "stock": 10_000 - sold.get(book_id, 0), "sold": sold.get(book_id, 0)}
        for book_id, price in prices.items()
    }


def test_a_consistent_shop_breaks_no_invariant() -> None:
    books = shelf({"00002": 2})
    buyer = {"name": BUYER, "balance": 100_000_000 - 2 * 6900, "books": [{"id": "00002", "count": 2}]}
    assert ShopState(books, buyer).invariant_breaks() == []
    assert ShopState(books, buyer).bought == 2


def test_money_taken_without_a_book_is_named() -> None:
    buyer = {"name": BUYER, "balance": 100_000_000 - 6900, "books": []}
    (broken,) = ShopState(shelf(), buyer).invariant_breaks()
    assert broken == f"{BUYER} spent 6900 fen, but the books {BUYER} owns cost 0 fen"


def test_a_copy_gone_without_a_sale_is_named() -> None:
    books = shelf()
    books["00001"]["stock"] = 9_999
    (broken,) = ShopState(books, None).invariant_breaks()
    assert broken.startswith("book 00001: 10000 − stock 9999 = 1, but 0 were sold")


@pytest.mark.parametrize(("number", "lab_id"), GRADED_LABS.items())
def test_every_check_has_a_solution_step_and_a_graded_cell_in_order(number: str, lab_id: str) -> None:
    lab = find_lab(number)
    assert lab.lab_id == lab_id and callable(lab.module.reset)
    assert all(step.solution_step is not None for step in lab.checks)
    notebook = json.loads((SOLUTIONS / f"{lab_id}.ipynb").read_text(encoding="utf-8"))
    graded = [
        re.search(r'labkit\.check\("(\d\d\.\d+)"\)\.raise_for_status\(\)', "".join(cell["source"]))
        for cell in notebook["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade")
    ]
    assert [match[1] for match in graded if match] == [step.check_id for step in lab.checks]


@pytest.mark.parametrize("lab_id", LABS.values())
def test_the_notebook_applies_the_overlay_and_buys_as_the_checks_expect(lab_id: str) -> None:
    text = (SOLUTIONS / f"{lab_id}.ipynb").read_text(encoding="utf-8")
    assert f'overlay(\\"{lab_id}\\")' in text
    assert f'buyer = \\"{BUYER}\\"' in text


def test_a_started_trace_is_joined_by_the_services() -> None:
    trace = start_trace()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", trace.headers["traceparent"])
    child = TraceContext.start(trace.traceparent)
    assert (child.trace_id, child.parent_id) == (trace.trace_id, trace.span_id)
    assert start_trace().trace_id != trace.trace_id


def test_page_links_live_under_the_servers_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert page_path("storefront") == "/bookstore/storefront/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert page_path("storefront") == "/user/ada/bookstore/storefront/"
    assert page_path("stock", base_url="/lab/") == "/lab/bookstore/stock/"
    assert 'href="/user/ada/bookstore/monolith/"' in page_link("monolith")._repr_html_()


@pytest.mark.parametrize("name", ["Storefront", "-stock", "a/b", "", "x" * 64])
def test_a_link_needs_a_service_name(name: str) -> None:
    with pytest.raises(ValueError, match="is not a Service name"):
        page_path(name)


def test_requests_go_to_the_services_cluster_name() -> None:
    assert (
        service_url("storefront", "bookstore", "api/books", "")
        == "http://storefront.bookstore.svc.cluster.local/api/books"
    )
    assert service_url("stock", "team-a", "", "a=1") == "http://stock.team-a.svc.cluster.local/?a=1"


def test_the_call_tree_is_drawn_as_a_waterfall_with_the_text_tree_as_fallback() -> None:
    from bookstore.calltree import CallTree, build_call_tree
    from bookstore.tracing import Span
    from labkit.traces import CallTreeView

    def span(service: str, span_id: str, parent: str | None, start: float, ms: float, status: int = 200) -> Span:
        return Span(
            service=service,
            version="v1",
            operation="POST /x",
            trace_id="a" * 32,
            span_id=span_id * 16,
            parent_id=parent * 16 if parent else None,
            start=start,
            duration_ms=ms,
            status=status,
            error=False,
        )

    spans = [span("storefront", "1", None, 100.0, 40.0), span("stock", "2", "1", 100.010, 10.0, 409)]
    view = CallTreeView(CallTree("a" * 32, build_call_tree(spans)))
    page = view._repr_html_()
    assert page.count('class="labkit-span"') == 2
    # stock starts a quarter into the 40 ms trace and lasts a quarter of it; its refusal is outlined red.
    assert "left:25.00%;width:25.00%" in page and "outline:2px solid #c62828" in page
    assert str(view).splitlines()[1:] == ["storefront POST /x 200 (40.0 ms)", "  stock POST /x 409 (10.0 ms)"]


@pytest.mark.parametrize(("number", "check_id"), [("01", "01.5"), ("02", "02.7")])
def test_each_lab_ends_with_a_challenge_that_tells_the_symptom(number: str, check_id: str) -> None:
    from checkers.challenges import CHALLENGES

    lab = find_lab(number)
    assert lab.checks[-1].check_id == check_id and check_id in CHALLENGES
    found = CHALLENGES[check_id]
    assert found.breaker is not None and found.repair is not None
    # Kubeasy's rule: the story and the title say what is seen, never the cause or the fix.
    words = f"{found.story} {found.title}".lower()
    for cause in ("ranking", "targetport", "8081", "$(", "rollout", "patch"):
        assert cause not in words, f"{check_id} gives away {cause!r}"
    notebook = (SOLUTIONS / f"{lab.lab_id}.ipynb").read_text(encoding="utf-8")
    assert f'labkit.challenge(\\"{check_id}\\")' in notebook
