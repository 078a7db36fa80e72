"""`kubectl apply`, client- and server-side, of objects and manifest sets nobody here wrote."""

from __future__ import annotations

import pytest

from tests.integration.conftest import LocalCluster

BARE = {
    "namespace": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bare-ns\n",
    "serviceaccount": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bare-sa\n",
    "configmap": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bare-cm\n",
}


@pytest.mark.parametrize("kind", sorted(BARE))
def test_server_side_apply_of_an_object_with_nothing_but_a_name_works_twice(cluster: LocalCluster, kind: str) -> None:
    manifest = BARE[kind]
    first = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    assert "serverside-applied" in first.stdout
    again = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    assert "serverside-applied" in again.stdout
    cluster.kubectl("delete", "-f", "-", "--wait=false", input=manifest)


def test_server_side_apply_after_a_client_side_apply_takes_over(cluster: LocalCluster) -> None:
    manifest = BARE["namespace"].replace("bare-ns", "csa-then-ssa")
    assert "created" in cluster.kubectl("apply", "-f", "-", input=manifest).stdout
    for _ in range(2):
        assert "serverside-applied" in cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    cluster.kubectl("delete", "namespace", "csa-then-ssa", "--wait=false")
