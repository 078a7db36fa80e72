"""Lab 02 put in the wrong states attendees really reach: each check answers FAILED with the cause
within its diagnosis budget, and following its last hint literally makes it pass.

The tests run in order on one cluster: each breaks what the previous one left working, and
following the hint is what repairs it again.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

import checkers
import labkit
from checkers.lab01_monolith import PURCHASE
from checkers.lab02_microservices import LAB_ID, NEW_RANKING, STOREFRONT
from labkit import admin_headers, apply, ensure_admin_secret
from labkit.connection import Connection
from labkit.kustomize import base_manifest, overlay
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import Fixer, diagnosed

pytestmark = pytest.mark.integration


def test_02_1_a_service_whose_claim_is_missing_is_named_at_once(ctx: Connection, fix: Fixer) -> None:
    # The attendee applied the Deployments only: stock and balance keep their data on claims.
    ensure_admin_secret(ctx)
    apply(overlay(LAB_ID, kinds=["Deployment"]), connection=ctx)
    failed = diagnosed(ctx, "02.1", "persistentvolumeclaim", "not found")
    assert fix("02.1", failed).ok


def test_02_2_a_missing_balance_service_is_named(ctx: Connection, fix: Fixer) -> None:
    apply([s for s in overlay(LAB_ID, kinds=["Service"]) if s["metadata"]["name"] != "balance"], connection=ctx)
    failed = diagnosed(ctx, "02.2", "no Service 'balance'")
    assert fix("02.2", failed).ok


def test_02_2_a_wrong_service_port_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    """The attendee's balance Service exposes the pods' port 8080 instead of 80, the port http://balance uses."""
    cluster.kubectl(
        "patch",
        "service",
        "balance",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/ports/0/port","value":8080}]',
    )
    failed = diagnosed(ctx, "02.2", "exposes port 8080", "http://balance asks for port 80")
    assert "targetPort" not in failed.hints[-1]
    assert fix("02.2", failed).ok


def test_02_3_a_storefront_that_cannot_reach_balance_says_why(ctx: Connection, fix: Fixer) -> None:
    ctx.core.delete_namespaced_service("balance", ctx.namespace)
    failed = diagnosed(ctx, "02.3", "no Service 'balance'")
    # The Service back, the check asks for the purchase; that hint done too, it passes.
    assert fix("02.3", failed).ok


def test_02_4_only_one_kind_of_refusal_is_not_enough(ctx: Connection, fix: Fixer) -> None:
    ctx.http.post(f"{STOREFRONT}/api/purchase", json={**PURCHASE, "book": "99999"})
    failed = diagnosed(ctx, "02.4", "more copies than ada can pay for")
    assert fix("02.4", failed).ok


def test_02_5_a_purchase_without_the_trace_header_is_not_traced(ctx: Connection, fix: Fixer) -> None:
    ctx.http.post(f"{STOREFRONT}/api/purchase", json=PURCHASE).raise_for_status()
    failed = diagnosed(ctx, "02.5", "no purchase that carried a trace")
    assert fix("02.5", failed).ok


def test_02_6_a_module_installed_without_activate_points_to_activating_it(ctx: Connection, fix: Fixer) -> None:
    installed = ctx.http.post(
        f"{STOREFRONT}/admin/modules", json={**NEW_RANKING, "activate": False}, headers=admin_headers(ctx)
    )
    assert installed.status_code == 201
    failed = diagnosed(ctx, "02.6", "by-price@1.0.0 is installed but not active")
    assert "/admin/modules/by-price/1.0.0/activate" in failed.hints[-1]
    assert fix("02.6", failed).ok


def test_02_1_an_image_that_cannot_be_pulled_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    cluster.kubectl("set", "image", "deployment/stock", "stock=ghcr.io/cloud-native-bookstore/workshop:v2")
    failed = diagnosed(ctx, "02.1", "workshop:v2")
    assert fix("02.1", failed).ok


def test_02_1_a_pod_the_replica_set_cannot_create_is_put_back_on_its_claim(
    cluster: LocalCluster, ctx: Connection, fix: Fixer, tmp_path: Path
) -> None:
    """The attendee's own stock manifest, applied from a terminal: its data on an emptyDir, and a
    ServiceAccount this namespace does not have (lab 05's), so the ReplicaSet cannot create its pod."""
    found = base_manifest("Deployment", "stock")
    assert found is not None
    own = copy.deepcopy(found[1])
    pod = own["spec"]["template"]["spec"]
    pod["serviceAccountName"] = "stock"
    pod["volumes"][0] = {"name": "data", "emptyDir": {}}
    edited = tmp_path / "stock.yaml"
    edited.write_text(yaml.safe_dump(own), encoding="utf-8")
    cluster.kubectl("apply", "-f", str(edited))
    failed = diagnosed(ctx, "02.1", "cannot create its pod", 'serviceaccount "stock" not found')
    assert fix("02.1", failed).ok
    put_back = ctx.apps.read_namespaced_deployment("stock", ctx.namespace).to_dict()["spec"]["template"]["spec"]
    assert put_back["volumes"][0]["persistent_volume_claim"] == {"claim_name": "stock-data", "read_only": None}
    assert put_back["volumes"][0]["empty_dir"] is None
    assert put_back["service_account_name"] is None


def test_02_7_the_challenge_tells_the_symptom_and_its_hints_lead_to_the_fix(ctx: Connection, fix: Fixer) -> None:
    checkers.solve(ctx, "02.6")
    labkit.challenge("02.7", connection=ctx)
    failed = diagnosed(ctx, "02.7", "The storefront still cannot reach balance")
    assert "targetPort" not in failed.message and "8081" not in failed.message
    where, cause, answer = failed.hints
    assert "kubectl get endpoints balance" in where
    assert "nothing listens there" in cause and "8081" in cause
    assert "targetPort" in answer
    assert fix("02.7", failed).ok
