"""What the lab 01 and 02 integration tests share: a connection to a test cluster, and the step proof.

The connection has the shape `labkit.connect()` returns (checkers.Context), built from the test
cluster's own kubeconfig and service proxy, so nothing of the user's environment is involved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from kubernetes import client

from checkers import Context, Status, find_lab, run_check
from labkit import apply
from tests.integration.conftest import LocalCluster

NAMESPACE = "bookstore"


@dataclass(frozen=True)
class ClusterConnection:
    """Kubernetes APIs and HTTP through the cluster's service proxy, for one test cluster."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    http: httpx.Client
    namespace: str = NAMESPACE


@contextmanager
def connection_to(cluster: LocalCluster) -> Iterator[ClusterConnection]:
    """A connection to `cluster` with the lab namespace created; closed on exit."""
    proxy = json.loads((cluster.home / "localcluster.json").read_text())["proxy"]
    with cluster.api_client() as api_client, httpx.Client(proxy=proxy, trust_env=False, timeout=15) as http:
        ctx = ClusterConnection(
            client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.CustomObjectsApi(api_client), http
        )
        apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, connection=ctx)
        yield ctx


def prove_each_step(ctx: Context, lab: str) -> list[str]:
    """For every check of `lab` in order: it FAILS, its solution step runs, then it PASSES.

    Returns the check ids proven; an assertion names the check and its verdict when one misbehaves.
    """
    proven = []
    for step in find_lab(lab).checks:
        before = run_check(step, ctx)
        assert before.status is Status.FAILED, f"{step.check_id} before its step: {before.summary()}"
        assert step.solution_step is not None, f"{step.check_id} has no solution step"
        step.solution_step(ctx)
        after = run_check(step, ctx)
        explained = f"{after.summary()}\n{after.evidence_text()}"
        assert after.status is Status.PASSED, f"{step.check_id} after its step: {explained}"
        proven.append(step.check_id)
    return proven


def verdicts(ctx: Context, lab: str) -> dict[str, Status]:
    return {step.check_id: run_check(step, ctx).status for step in find_lab(lab).checks}
