"""Lab 05 put in the wrong states attendees really reach: each check answers FAILED with the cause
within its diagnosis budget, and following its last hint literally makes it pass.

The tests run in order on one cluster: each breaks what the previous one left working, and
following the hint is what repairs it again.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import checkers
from checkers.lab01_monolith import wait_until_ready
from checkers.lab05_mesh import (
    LAB_ID,
    POLICIES,
    ROUTE_90_10,
    ROUTE_RESILIENT,
    ROUTE_TESTER,
    SERVICES,
    STOCK_FAULTS,
    SUBSETS,
    lesson,
    start_challenge,
    wait_in_mesh,
)
from labkit import apply, ensure_admin_secret
from labkit.connection import Connection
from labkit.kustomize import overlay
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import Fixer, diagnosed

pytestmark = pytest.mark.integration


def lesson_object(name: str) -> dict[str, Any]:
    """The one object of a lesson file, to change as an attendee would before applying it."""
    (obj,) = lesson(name)
    return copy.deepcopy(obj)


def test_05_1_a_namespace_without_the_injection_label_is_named(ctx: Connection, fix: Fixer) -> None:
    # The attendee deployed the lab's services but never labelled the namespace: no pod has a sidecar.
    ensure_admin_secret(ctx)
    kinds = {"ServiceAccount", "PersistentVolumeClaim", "Service"}
    apply([obj for obj in overlay(LAB_ID) if obj["kind"] in kinds], connection=ctx)
    apply([obj for obj in overlay(LAB_ID, kinds=["Deployment"]) if obj["metadata"]["name"] in SERVICES], connection=ctx)
    wait_until_ready(ctx, SERVICES)
    failed = diagnosed(ctx, "05.1", "is not in the mesh", "istio-injection=enabled")
    assert "kubectl rollout restart deployment storefront stock balance" in failed.hints[-1]
    assert fix("05.1", failed).ok


def test_05_2_a_subset_the_destination_rule_does_not_define_is_named(ctx: Connection, fix: Fixer) -> None:
    # The attendee's DestinationRule knows v1 only; the VirtualService routes 0 % to v2 all the same.
    only_v1 = lesson_object(SUBSETS)
    only_v1["spec"]["subsets"] = only_v1["spec"]["subsets"][:1]
    v2 = [obj for obj in overlay(LAB_ID, kinds=["Deployment"]) if obj["metadata"]["name"] == "storefront-v2"]
    apply(
        [*v2, *lesson("gateway-bookstore.yaml"), only_v1, *lesson("virtual-service-storefront-100-0.yaml")],
        connection=ctx,
    )
    wait_in_mesh(ctx, ["storefront-v2"])
    failed = diagnosed(ctx, "05.2", "routes to subset v2", "does not define")
    assert SUBSETS in failed.hints[-1]
    assert fix("05.2", failed).ok


def test_05_3_weights_other_than_asked_are_named(ctx: Connection, fix: Fixer) -> None:
    halves = lesson_object(ROUTE_90_10)
    for route in halves["spec"]["http"][0]["route"]:
        route["weight"] = 50
    apply(halves, connection=ctx)
    failed = diagnosed(ctx, "05.3", "sends 50 % to v1 and 50 % to v2", "asks 90 % to v1 and 10 % to v2")
    assert fix("05.3", failed).ok


def test_05_3_a_subset_whose_label_selects_no_pod_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    wrong = '[{"op":"replace","path":"/spec/subsets/1/labels/version","value":"2"}]'
    cluster.kubectl("patch", "destinationrule", "storefront", "--type=json", "-p", wrong)
    failed = diagnosed(ctx, "05.3", "Subset v2", "selects version=2", "no storefront pod has those labels")
    assert fix("05.3", failed).ok


def test_05_4_a_header_rule_after_the_rule_for_everyone_is_named(ctx: Connection, fix: Fixer) -> None:
    late = lesson_object(ROUTE_TESTER)
    late["spec"]["http"].reverse()
    apply(late, connection=ctx)
    failed = diagnosed(ctx, "05.4", "comes after the rule for everyone", "first match wins")
    assert fix("05.4", failed).ok


def test_05_5_a_missing_fault_then_one_with_other_values_are_named(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "05.5", "No VirtualService for stock injects faults")
    assert fix("05.5", failed).ok
    rare = lesson_object(STOCK_FAULTS)
    rare["spec"]["http"][0]["fault"]["abort"]["percentage"]["value"] = 5
    apply(rare, connection=ctx)
    failed = diagnosed(ctx, "05.5", "aborted %: 5, this step asks 50")
    assert fix("05.5", failed).ok


def test_05_6_no_retries_then_a_per_try_timeout_longer_than_the_delay_are_named(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "05.6", "no timeout", "no retries")
    assert fix("05.6", failed).ok
    slow = lesson_object(ROUTE_RESILIENT)
    for rule in slow["spec"]["http"]:
        rule["retries"]["perTryTimeout"] = "3s"
    apply(slow, connection=ctx)
    failed = diagnosed(ctx, "05.6", "perTryTimeout is 3s")
    assert fix("05.6", failed).ok


def test_05_7_a_policy_for_another_namespaces_storefront_is_named(ctx: Connection, fix: Fixer) -> None:
    # Copied from Istio's docs, where everything runs in the namespace "default".
    docs = copy.deepcopy(lesson(POLICIES))
    for policy in docs:
        policy["spec"]["rules"] = [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/storefront"]}}]}]
    apply(docs, connection=ctx)
    failed = diagnosed(ctx, "05.7", "No ALLOW policy at balance lets the storefront's identity")
    assert fix("05.7", failed).ok


def test_05_8_a_release_left_at_90_10_is_named(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "05.8", "v1 still serves visitors")
    assert fix("05.8", failed).ok


def test_05_9_the_challenge_not_started_is_named_and_the_hint_starts_it(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "05.9", "has not started")
    assert fix("05.9", failed).ok  # started as the hint writes it, then repaired as the next hints say


def test_05_9_the_challenge_is_told_by_its_symptom_and_the_hints_reach_the_fix(ctx: Connection, fix: Fixer) -> None:
    start_challenge(ctx)  # the colleague's change again, on the challenge started by the previous test
    failed = diagnosed(ctx, "05.9", "visitors got an error page")
    assert "v2.0" not in failed.message  # the symptom, not the cause
    assert any("version=v2.0" in hint for hint in failed.hints)
    assert fix("05.9", failed).ok
    checkers.reset(ctx, "05")
