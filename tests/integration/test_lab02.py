"""Lab 02 on a real localcluster: each check fails before its step and passes after; the module switch
keeps the pod; the trace crosses services; reset removes the lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checkers import Status
from checkers.lab02_microservices import LAB_ID, SERVICES, STOREFRONT, look_at_ranking, reset
from labkit.traces import call_tree, start_trace
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import ClusterConnection, connection_to, prove_each_step, verdicts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ctx(cluster: LocalCluster) -> Iterator[ClusterConnection]:
    with connection_to(cluster) as connection:
        yield connection


def test_each_check_fails_before_its_step_and_passes_after(ctx: ClusterConnection) -> None:
    assert prove_each_step(ctx, "02") == ["02.1", "02.2", "02.3", "02.4", "02.5", "02.6"]
    assert set(verdicts(ctx, "02").values()) == {Status.PASSED}


def test_the_switch_kept_the_pod_and_changed_the_order(ctx: ClusterConnection) -> None:
    seen = look_at_ranking(ctx)
    (pod,) = seen.pods
    assert seen.active == "by-price@1.0.0" and pod.restarts == 0
    # by-price: ¥69, ¥79, ¥89, ¥99, ¥128.
    assert seen.order == ("00002", "00005", "00004", "00001", "00003") != seen.startup_order
    (pod_now,) = ctx.core.list_namespaced_pod(ctx.namespace, label_selector="app=storefront").items
    assert pod_now.metadata.uid == pod.uid


def test_a_purchase_call_tree_crosses_the_three_services(ctx: ClusterConnection) -> None:
    trace = start_trace()
    answer = ctx.http.post(
        f"{STOREFRONT}/api/purchase", json={"user": "ada", "book": "00004", "count": 1}, headers=trace.headers
    )
    assert answer.status_code == 201
    view = call_tree(trace, SERVICES, connection=ctx)
    (root,) = view.tree.roots
    assert root.span.service == "storefront" and root.span.parent_id == trace.span_id
    assert [child.span.service for child in root.children] == ["stock", "balance", "stock"]
    assert str(view).splitlines()[1].startswith("storefront POST /api/purchase 201")


def test_reset_removes_the_lab(ctx: ClusterConnection) -> None:
    reset(ctx)
    selector = f"bookstore.workshop/lab={LAB_ID}"
    assert not ctx.apps.list_namespaced_deployment(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_service(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_pod(ctx.namespace).items
    assert verdicts(ctx, "02")["02.1"] is Status.FAILED
