"""Labs in the course's order on one namespace: a lab starts from what the previous one left.

The notebook tier gives every lab a fresh cluster; an attendee does not. Lab 04 leaves a Knative
Service named storefront whose Route owns the Service `storefront` that lab 05's storefront needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers import run_check, select
from checkers.lab04_serverless import deploy_serverless_storefront
from checkers.lab05_mesh import LAB_ID, enable_mesh, serverless_storefront_holds_name
from labkit import apply
from labkit.connection import Connection
from labkit.kustomize import overlay
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import connection_to, diagnosed, follow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ctx(cluster: LocalCluster) -> Iterator[Connection]:
    with connection_to(cluster) as connection:
        yield connection


def test_lab05_after_lab04_names_the_knative_storefront_and_its_hint_frees_the_name(
    ctx: Connection, cluster: LocalCluster, tmp_path: Path
) -> None:
    deploy_serverless_storefront(ctx)  # lab 04's first step: the storefront is a Ready Knative Service
    # Lab 05's step 2 as a notebook without the removal cell runs it: the Route's Service takes the apply.
    apply(overlay(LAB_ID, kinds={"ServiceAccount", "PersistentVolumeClaim", "Service", "Deployment"}), connection=ctx)

    failed = diagnosed(ctx, "05.1", "Knative Service storefront")
    follow(failed.hints[-1], ctx, cluster, tmp_path)

    assert not serverless_storefront_holds_name(ctx)
    service = ctx.core.read_namespaced_service("storefront", ctx.namespace)
    assert service.spec.selector == {"app": "storefront"}  # lab 05's Service, no Knative placeholder
    enable_mesh(ctx)
    (check,) = select("05.1")
    result = run_check(check, ctx)
    assert result.ok, f"{result.summary()}\n{result.evidence_text()}"
