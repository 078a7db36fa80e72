"""Lab 01 put in the wrong states attendees really reach: each check answers FAILED with the cause
within its diagnosis budget, and following its last hint literally makes it pass.

The tests run in order on one cluster: each breaks what the previous one left working, and
following the hint is what repairs it again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import checkers
import labkit
from checkers.lab01_monolith import LAB_ID, MONOLITH, PURCHASE, wait_until_ready
from labkit import apply
from labkit.admin import ADMIN_SECRET
from labkit.connection import Connection
from labkit.kustomize import overlay
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import Fixer, diagnosed, follow

pytestmark = pytest.mark.integration


def test_01_1_a_forgotten_claim_then_a_forgotten_secret_are_named_at_once(
    cluster: LocalCluster, tmp_path: Path, ctx: Connection, fix: Fixer
) -> None:
    checkers.reset(ctx, "01")
    cluster.kubectl("delete", "secret", ADMIN_SECRET, "--ignore-not-found")
    apply(overlay(LAB_ID, kinds=["Deployment"]), connection=ctx)  # the attendee applied only the Deployment
    failed = diagnosed(ctx, "01.1", 'persistentvolumeclaim "monolith-data" not found')
    assert "kubectl describe pod" in failed.hint
    follow(failed.hints[-1], ctx, cluster, tmp_path)
    failed = diagnosed(ctx, "01.1", f'secret "{ADMIN_SECRET}" not found')
    assert "labkit.ensure_admin_secret()" in failed.hints[-1]
    assert fix("01.1", failed).ok


def test_01_1_an_image_that_cannot_be_pulled_is_named_at_once(
    cluster: LocalCluster, ctx: Connection, fix: Fixer
) -> None:
    cluster.kubectl("set", "image", "deployment/monolith", "monolith=ghcr.io/cloud-native-bookstore/workshop:lates")
    failed = diagnosed(ctx, "01.1", "cannot start", "workshop:lates")
    assert fix("01.1", failed).ok


def test_01_1_data_on_an_empty_dir_is_named_and_put_back_on_its_claim(
    cluster: LocalCluster, ctx: Connection, fix: Fixer
) -> None:
    emptied = '[{"op":"replace","path":"/spec/template/spec/volumes/0","value":{"name":"data","emptyDir":{}}}]'
    cluster.kubectl("patch", "deployment", "monolith", "--type=json", "-p", emptied)
    failed = diagnosed(ctx, "01.1", "not a PersistentVolumeClaim")
    assert fix("01.1", failed).ok
    volumes = ctx.apps.read_namespaced_deployment("monolith", ctx.namespace).spec.template.spec.volumes
    assert volumes[0].persistent_volume_claim.claim_name == "monolith-data"


def test_01_2_a_service_without_selector_is_named(ctx: Connection, fix: Fixer) -> None:
    (service,) = overlay(LAB_ID, kinds=["Service"])
    service["spec"].pop("selector")  # the cell's Service, applied before completing it
    apply(service, connection=ctx)
    failed = diagnosed(ctx, "01.2", "has no selector")
    assert fix("01.2", failed).ok


def test_01_2_a_selector_that_matches_nothing_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    cluster.kubectl("set", "selector", "service", "monolith", "app=monolit")
    failed = diagnosed(ctx, "01.2", "app=monolit", "no pod has those labels")
    assert fix("01.2", failed).ok


def test_01_2_a_target_port_nothing_listens_on_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    patch = '[{"op":"replace","path":"/spec/ports/0/targetPort","value":9090}]'
    cluster.kubectl("patch", "service", "monolith", "--type=json", "-p", patch)
    failed = diagnosed(ctx, "01.2", "nothing listens there", "9090")
    assert fix("01.2", failed).ok


def test_01_3_no_account_yet_points_to_opening_one_and_buying(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "01.3", "There is no user 'ada'")
    assert fix("01.3", failed).ok


def test_01_4_only_one_kind_of_refusal_is_not_enough(ctx: Connection, fix: Fixer) -> None:
    ctx.http.post(f"{MONOLITH}/api/purchase", json={**PURCHASE, "book": "99999"})
    failed = diagnosed(ctx, "01.4", "more copies than ada can pay for")
    assert "a book that does not exist" not in failed.message
    assert fix("01.4", failed).ok


def test_01_1_a_missing_deployment_after_a_good_start(ctx: Connection, fix: Fixer) -> None:
    ctx.apps.delete_namespaced_deployment("monolith", ctx.namespace)
    failed = diagnosed(ctx, "01.1", "no Deployment 'monolith'")
    assert fix("01.1", failed).ok
    wait_until_ready(ctx, ["monolith"])


def test_01_5_the_challenge_tells_the_symptom_and_its_hints_lead_to_the_fix(ctx: Connection, fix: Fixer) -> None:
    not_started = diagnosed(ctx, "01.5", "has not started yet")
    assert 'labkit.challenge("01.5")' in not_started.hints[-1]
    card = labkit.challenge("01.5", connection=ctx)
    assert "ConfigMap" in card.story and "RANKING" not in card.story  # the symptom, never the cause
    failed = diagnosed(ctx, "01.5", "The shop is still down")
    assert "RANKING" not in failed.message
    where, cause, answer = failed.hints
    assert "kubectl logs" in where and "--previous" in where
    assert "exited with code 2" in cause and "$(RANKING)" in cause
    assert "kubectl rollout restart deployment monolith" in answer
    assert fix("01.5", failed).ok
