"""Lab 03 put in the wrong states attendees really reach: each check answers FAILED with the cause
within its diagnosis budget, and following its last hint literally makes it pass.

The tests run in order on one cluster: each breaks what the previous one left working, and
following the hint is what repairs it again.
"""

from __future__ import annotations

import uuid

import pytest

import checkers
from checkers.lab01_monolith import PURCHASE, wait_until_ready
from checkers.lab03_transactions import (
    BUYERS,
    LAB_ID,
    STOREFRONT,
    TC_URL,
    VICTIM,
    audit_shop,
    look_at_coordinator,
    start_challenge,
)
from labkit import apply, ensure_admin_secret
from labkit.connection import Connection
from labkit.kustomize import overlay
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import Fixer, diagnosed

pytestmark = pytest.mark.integration


def test_03_1_lab_02s_services_without_lab_mode_are_named(ctx: Connection, fix: Fixer) -> None:
    # The attendee carried on with lab 02's Deployments: the same services, without lab mode.
    ensure_admin_secret(ctx)
    apply(overlay("02-microservices"), connection=ctx)
    wait_until_ready(ctx, ["storefront", "stock", "balance"])
    failed = diagnosed(ctx, "03.1", "'storefront' does not run in lab mode")
    assert "kubectl set env deployment/storefront BOOKSTORE_LAB_MODE=true" in failed.hints[-1]
    assert fix("03.1", failed).ok  # one service per hint: storefront, stock, then balance


def test_03_1_a_crash_looping_participant_is_named_with_its_log(
    cluster: LocalCluster, ctx: Connection, fix: Fixer
) -> None:
    cluster.kubectl("set", "env", "deployment/stock", "BOOKSTORE_LAB_MODE=ture")  # a typo, by hand
    failed = diagnosed(ctx, "03.1", "exited with code", "BOOKSTORE_LAB_MODE='ture'")
    assert f"infra/overlays/{LAB_ID} -l app=stock" in failed.hints[-1]
    assert fix("03.1", failed).ok


def test_03_2_a_purchase_without_the_fault_is_not_the_broken_one(ctx: Connection, fix: Fixer) -> None:
    ctx.http.post(f"{STOREFRONT}/api/users", json={"name": VICTIM})
    ctx.http.post(f"{STOREFRONT}/api/purchase", json={**PURCHASE, "user": VICTIM}).raise_for_status()
    failed = diagnosed(ctx, "03.2", "no purchase has gone wrong yet")
    assert fix("03.2", failed).ok


def test_03_3_tc_without_its_claim_then_without_its_service(ctx: Connection, fix: Fixer) -> None:
    # The attendee applied tc's Deployment alone: its log's claim and its Service are missing.
    apply([obj for obj in overlay(LAB_ID, kinds=["Deployment"]) if obj["metadata"]["name"] == "tc"], connection=ctx)
    failed = diagnosed(ctx, "03.3", 'persistentvolumeclaim "tc-data" not found')
    assert fix("03.3", failed).ok


def test_03_3_tc_with_its_log_on_an_empty_dir_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    emptied = '[{"op":"replace","path":"/spec/template/spec/volumes/0","value":{"name":"data","emptyDir":{}}}]'
    cluster.kubectl("patch", "deployment", "tc", "--type=json", "-p", emptied)
    failed = diagnosed(ctx, "03.3", "not a PersistentVolumeClaim")
    assert fix("03.3", failed).ok
    put_back = ctx.apps.read_namespaced_deployment("tc", ctx.namespace).to_dict()["spec"]["template"]["spec"]
    assert put_back["volumes"][0]["persistent_volume_claim"]["claim_name"] == "tc-data"


def test_03_4_purchases_that_do_not_go_through_tc_are_named(ctx: Connection, fix: Fixer) -> None:
    # tc runs, but the storefront was never told: ada's purchase is a plain one.
    ctx.http.post(f"{STOREFRONT}/api/users", json={"name": BUYERS[0]})
    ctx.http.post(f"{STOREFRONT}/api/purchase", json={**PURCHASE, "user": BUYERS[0]}).raise_for_status()
    failed = diagnosed(ctx, "03.4", "has no BOOKSTORE_TC_URL")
    assert fix("03.4", failed).ok  # the variable, then a purchase through tc


def test_03_4_tc_at_seatas_port_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    cluster.kubectl("set", "env", "deployment/storefront", "BOOKSTORE_TC_URL=http://tc:8091")
    cluster.kubectl("rollout", "status", "deployment/storefront", "--timeout=60s")
    refused = ctx.http.post(f"{STOREFRONT}/api/purchase", json={**PURCHASE, "user": BUYERS[0]})
    assert refused.status_code == 503
    failed = diagnosed(ctx, "03.4", "names http://tc:8091", "asks for port 8091, which it does not expose")
    assert fix("03.4", failed).ok


def test_03_5_a_drill_not_run_then_a_reservation_tc_never_knew_are_named(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "03.5", "No purchase in tc's log was struck at", "stock.try")
    assert fix("03.5", failed).ok  # the drill, run as its hint writes it
    # A try made by hand while exploring stock's TCC API: no global transaction will ever end it.
    held = ctx.http.post(
        "http://stock/txn/reserve-stock/try",
        json={
            "xid": uuid.uuid4().hex,
            "branch_id": 1,
            "order_id": uuid.uuid4().hex,
            "user": BUYERS[1],
            "book": "00002",
            "count": 2,
            "price": 6900,
        },
    )
    assert held.status_code == 200, held.text
    failed = diagnosed(ctx, "03.5", "tc has finished or never knew", "2 copies reserved")
    assert fix("03.5", failed).ok
    assert not audit_shop(ctx.http).reservations


def test_03_5_a_participant_tc_cannot_reach_is_named_at_once(ctx: Connection, fix: Fixer) -> None:
    # stock's Service deleted: a purchase's try cannot reach stock, and tc's cancel of it waits for stock.
    ctx.core.delete_namespaced_service("stock", ctx.namespace)
    refused = ctx.http.post(f"{STOREFRONT}/api/purchase", json={**PURCHASE, "user": BUYERS[1]})
    assert refused.status_code != 201, refused.text
    assert look_at_coordinator(ctx.http).unfinished
    failed = diagnosed(ctx, "03.5", "no Service 'stock'")
    assert fix("03.5", failed).ok  # the Service back, tc's next attempt finishes the rollback


def test_03_5_a_transaction_nobody_decided_is_named_and_rolled_back(ctx: Connection, fix: Fixer) -> None:
    # Begun by hand while exploring tc's API, with a try at stock: nobody will ask tc to decide it, and its
    # timeout (an hour) is far beyond the check's budget.
    begun = ctx.http.post(
        f"{TC_URL}/api/transactions",
        json={
            "name": "purchase",
            "timeout_seconds": 3600,
            "branches": [{"resource": "stock", "action": "reserve-stock", "url": "http://stock"}],
        },
    )
    assert begun.status_code == 201, begun.text
    xid = begun.json()["xid"]
    held = ctx.http.post(
        "http://stock/txn/reserve-stock/try",
        json={
            "xid": xid,
            "branch_id": begun.json()["branches"][0]["branch_id"],
            "order_id": uuid.uuid4().hex,
            "user": BUYERS[1],
            "book": "00002",
            "count": 1,
            "price": 6900,
        },
    )
    assert held.status_code == 200, held.text
    failed = diagnosed(ctx, "03.5", "nobody decided", xid)
    assert fix("03.5", failed).ok  # rolled back as the hint writes it: tc cancels the try
    assert not audit_shop(ctx.http).reservations


def test_03_6_no_pod_replaced_under_load_is_named_and_the_hint_runs_the_step(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "03.6", "No stock or balance pod was replaced")
    assert fix("03.6", failed).ok  # the step, run as its hint writes it


def test_03_6_a_deleted_deployment_instead_of_a_pod_is_named(ctx: Connection, fix: Fixer) -> None:
    # After the step (the previous test): the Deployment deleted, not its pod.
    ctx.apps.delete_namespaced_deployment("balance", ctx.namespace)
    failed = diagnosed(ctx, "03.6", "no Deployment 'balance'")
    assert fix("03.6", failed).ok


def test_03_6_a_crash_looping_participant_is_named_instead_of_waited_for(
    cluster: LocalCluster, ctx: Connection, fix: Fixer
) -> None:
    cluster.kubectl("set", "env", "deployment/balance", "BOOKSTORE_LAB_MODE=ture")
    failed = diagnosed(ctx, "03.6", "exited with code")
    assert fix("03.6", failed).ok


def test_03_7_the_challenge_is_told_by_its_symptom_and_the_hints_reach_the_fix(ctx: Connection, fix: Fixer) -> None:
    start_challenge(ctx)
    failed = diagnosed(ctx, "03.7", "can still take money without giving the book")
    assert "BOOKSTORE_TC_URL" not in failed.message
    assert fix("03.7", failed).ok  # tc named again, then each payment for nothing refunded
    checkers.reset(ctx, "03")
