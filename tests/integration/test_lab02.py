"""Lab 02 on a real localcluster: each check fails before its step and passes after; the module switch
keeps the pod; the trace crosses services; reset removes the lab."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from checkers import Status
from checkers.lab02_microservices import LAB_ID, SERVICES, STOREFRONT, look_at_ranking, reset
from labkit import wait_for
from labkit.connection import Connection
from labkit.traces import call_tree, start_trace
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import prove_each_step, verdicts

pytestmark = pytest.mark.integration


def test_each_check_fails_before_its_step_and_passes_after(ctx: Connection) -> None:
    assert prove_each_step(ctx, "02") == ["02.1", "02.2", "02.3", "02.4", "02.5", "02.6", "02.7"]
    assert set(verdicts(ctx, "02").values()) == {Status.PASSED}


def test_the_switch_kept_the_pod_and_changed_the_order(ctx: Connection) -> None:
    seen = look_at_ranking(ctx)
    (pod,) = seen.pods
    assert seen.active == "by-price@1.0.0" and pod.restarts == 0
    # by-price: ¥69, ¥79, ¥89, ¥99, ¥128.
    assert seen.order == ("00002", "00005", "00004", "00001", "00003") != seen.startup_order
    (pod_now,) = ctx.core.list_namespaced_pod(ctx.namespace, label_selector="app=storefront").items
    assert pod_now.metadata.uid == pod.uid


def test_a_purchase_call_tree_crosses_the_three_services(ctx: Connection) -> None:
    trace = start_trace()
    answer = ctx.http.post(
        f"{STOREFRONT}/api/purchase", json={"user": "ada", "book": "00004", "count": 1}, headers=trace.headers
    )
    assert answer.status_code == 201
    view = call_tree(trace, SERVICES, connection=ctx)
    (root,) = view.tree.roots
    assert root.span.service == "storefront" and root.span.parent_id == trace.span_id
    # The price comes from stock once per book (then the storefront knows it): money first, then the order.
    assert [child.span.service for child in root.children][-2:] == ["balance", "stock"]
    assert str(view).splitlines()[1].startswith("storefront POST /api/purchase 201")


def test_orders_and_money_outlive_the_pods_that_wrote_them(ctx: Connection) -> None:
    before = ctx.http.get(f"{STOREFRONT}/api/users/ada").json()
    assert before["books"], "the earlier tests bought books for ada"
    old = {
        pod.metadata.uid
        for pod in ctx.core.list_namespaced_pod(ctx.namespace, label_selector="app in (stock,balance)").items
    }
    for name in ("stock", "balance"):
        ctx.core.delete_collection_namespaced_pod(ctx.namespace, label_selector=f"app={name}")

    def replaced_and_serving() -> bool:
        pods = ctx.core.list_namespaced_pod(ctx.namespace, label_selector="app in (stock,balance)").items
        fresh = [pod for pod in pods if pod.metadata.uid not in old and pod.metadata.deletion_timestamp is None]
        return len(fresh) == 2 and ctx.http.get(f"{STOREFRONT}/api/users/ada").status_code == 200

    wait_for(replaced_and_serving, what="new stock and balance pods to serve ada's account", timeout=120)
    assert ctx.http.get(f"{STOREFRONT}/api/users/ada").json() == before


@pytest.fixture
def jupyter(cluster: LocalCluster, tmp_path: Path) -> Iterator[httpx.Client]:
    """A Jupyter server with the bookstore route, on a free loopback port, token auth, all state in tmp_path."""
    token = secrets.token_hex(16)
    runtime = tmp_path / "runtime"
    env = {**cluster.env, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(runtime)}
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")
    log = (tmp_path / "jupyter.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={tmp_path}",
            f"--IdentityProvider.token={token}",
            "--ServerApp.jpserver_extensions={'labkit.jupyter_proxy': True}",
            "--allow-root",  # CI runs as root in a throwaway container
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        info = wait_for(
            lambda: [json.loads(p.read_text()) for p in runtime.glob("jpserver-*.json") if p.stat().st_size],
            what="the Jupyter server to start",
            timeout=60,
        )[0]
        with httpx.Client(base_url=f"http://127.0.0.1:{info['port']}", trust_env=False, timeout=30) as http:
            http.headers["Authorization"] = f"token {token}"
            yield http
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_jupyter_serves_the_storefront_page_and_api(jupyter: httpx.Client) -> None:
    moved = jupyter.get("/bookstore/storefront")
    assert moved.status_code == 301 and moved.headers["location"] == "/bookstore/storefront/"
    page = jupyter.get("/bookstore/storefront/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    books = jupyter.get("/bookstore/storefront/api/books")
    assert books.headers["x-bookstore-service"] == "storefront" and len(books.json()["books"]) == 5
    bought = jupyter.post("/bookstore/storefront/api/purchase", json={"user": "ada", "book": "00005", "count": 1})
    assert bought.status_code == 201 and bought.json()["amount"] == 7900
    refused = jupyter.post("/bookstore/storefront/api/purchase", json={"user": "nobody", "book": "00005", "count": 1})
    assert refused.status_code == 404 and refused.json()["error"] == "unknown_user"
    unknown = jupyter.get("/bookstore/no-such-service/")
    assert 400 <= unknown.status_code < 600 and unknown.status_code != 500


def test_jupyter_route_needs_the_jupyter_login(jupyter: httpx.Client) -> None:
    anonymous = httpx.get(jupyter.base_url.join("/bookstore/storefront/api/books"), trust_env=False)
    assert anonymous.status_code in (302, 403)
    assert "x-bookstore-service" not in anonymous.headers


def test_reset_removes_the_lab(ctx: Connection) -> None:
    reset(ctx)
    selector = f"bookstore.workshop/lab={LAB_ID}"
    assert not ctx.apps.list_namespaced_deployment(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_service(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_pod(ctx.namespace).items
    assert verdicts(ctx, "02")["02.1"] is Status.FAILED
