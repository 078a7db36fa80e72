"""`labkit.apply` shows what kubectl shows: one line per object, created, configured or unchanged."""

from __future__ import annotations

import pytest

from labkit import apply
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import connection_to

pytestmark = pytest.mark.integration

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"RANKING": "by-sales"}}
SERVICE_ACCOUNT = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop"}}
ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "reader"},
    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
}


def test_one_line_per_object_as_kubectl_says_it(cluster: LocalCluster) -> None:
    with connection_to(cluster) as ctx:
        first = apply([CONFIGMAP, SERVICE_ACCOUNT, ROLE], connection=ctx)
        assert str(first).splitlines() == [
            "configmap/settings created",
            "serviceaccount/shop created",
            "role.rbac.authorization.k8s.io/reader created",
        ]
        again = apply([CONFIGMAP, {**SERVICE_ACCOUNT}], connection=ctx)
        assert str(again).splitlines() == ["configmap/settings unchanged", "serviceaccount/shop unchanged"]
        changed = apply({**CONFIGMAP, "data": {"RANKING": "by-price"}}, connection=ctx)
        assert str(changed) == "configmap/settings configured"
        # The stored objects are still there, for code that reads them.
        assert changed[0]["data"] == {"RANKING": "by-price"}
