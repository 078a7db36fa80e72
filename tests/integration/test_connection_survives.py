"""A notebook's connection outlives `lab down && lab up`: no kernel restart, no new `connect()`.

While the cluster is down a check is ERROR (the environment's, never FAILED) and says `lab up`;
once the cluster is back on new ports, the very same connection's API client, HTTP client and
`labkit.kubectl()` (KUBECONFIG unset) find it, and the checks are green again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import checkers
import labkit
from checkers import Status, run_check, select
from tests.integration.conftest import LocalCluster, free_port, poll_until
from tests.integration.lab_support import connection_to

pytestmark = pytest.mark.integration


def ports(home: Path) -> tuple[int, str]:
    """The API port and the service proxy's URL the running server wrote down."""
    state = json.loads((home / "localcluster.json").read_text())
    return state["port"], state["proxy"]


def test_the_same_connection_works_after_lab_down_and_up(
    fresh_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = fresh_cluster
    with connection_to(cluster) as ctx:
        checkers.solve(ctx, "01.2")  # the monolith, answering through its Service
        before = ports(cluster.home)
        assert ctx.http.get("http://monolith/health").status_code == 200

        cluster.lab("down")
        (api_check,) = select("00.1")
        down = run_check(api_check, ctx)
        assert down.status is Status.ERROR, down.summary()
        assert "lab up" in down.hint

        cluster.lab("up", "--timeout", "60", "--port", str(free_port(other_than=before[0])))
        assert ports(cluster.home)[0] != before[0]

        assert run_check(api_check, ctx).ok
        monolith = poll_until(
            lambda: run_check(select("01.2")[0], ctx),
            lambda result: result.ok,
            "01.2 to pass on the same connection after the restart",
            timeout=90,
        )
        assert monolith.status is Status.PASSED
        assert ctx.http.get("http://monolith/health").json()["service"] == "monolith"

        # labkit.kubectl() with KUBECONFIG unset reaches the cluster connect() found (LAB_HOME's).
        monkeypatch.setenv("LAB_HOME", str(cluster.home))
        monkeypatch.delenv("KUBECONFIG", raising=False)
        shown = labkit.kubectl("get", "deployment", "monolith", "-o", "name")
        assert shown.stdout.strip() == "deployment.apps/monolith"
