"""Lab 01 on a real localcluster: every check fails before its step and passes after; reset starts over."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from checkers import Status, run_check, select
from checkers.lab01_monolith import (
    APP,
    BUYER,
    LAB_ID,
    MONOLITH,
    look_at_deployment,
    monolith_reachable,
    reset,
    wait_until_ready,
)
from labkit import release, wait_for
from labkit.connection import Connection
from labkit.kustomize import overlay_path
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import follow, prove_each_step, verdicts

pytestmark = pytest.mark.integration

#: A code span of the notebook that runs kubectl on a kustomize directory: `kubectl("apply", ..., "-k", ...)`.
KUBECTL_WAY = re.compile(r'`(kubectl\([^`]*"-k"[^`]*)`')


def test_each_check_fails_before_its_step_and_passes_after(ctx: Connection) -> None:
    assert prove_each_step(ctx, "01") == ["01.1", "01.2", "01.3", "01.4", "01.5"]
    assert set(verdicts(ctx, "01").values()) == {Status.PASSED}


def test_the_purchase_survives_a_new_pod(ctx: Connection) -> None:
    """The claim is the lesson of the volume: a new pod opens the same database."""
    before = ctx.http.get(f"{MONOLITH}/api/users/{BUYER}").json()
    (old,) = look_at_deployment(ctx, APP).pods
    ctx.core.delete_namespaced_pod(old.name, ctx.namespace)
    replaced = wait_for(
        lambda: [pod for pod in look_at_deployment(ctx, APP).ready_pods if pod.uid != old.uid],
        what="a new Ready monolith pod",
        timeout=60,
    )
    assert len(replaced) == 1
    assert run_check(monolith_reachable, ctx).ok
    assert ctx.http.get(f"{MONOLITH}/api/users/{BUYER}").json() == before


def test_reset_removes_the_lab_and_its_data(ctx: Connection) -> None:
    reset(ctx)
    selector = f"bookstore.workshop/lab={LAB_ID}"
    assert not ctx.apps.list_namespaced_deployment(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_service(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_persistent_volume_claim(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_pod(ctx.namespace).items
    # The lab can be done again from the start: the new shop does not know the old buyer.
    assert prove_each_step(ctx, "01") == ["01.1", "01.2", "01.3", "01.4", "01.5"]


def test_the_lab_commands_solve_check_and_reset(cluster: LocalCluster, ctx: Connection) -> None:
    """`lab solve 01`, `lab check 01` (exit 0), `lab reset 01`, then `lab check 01.1` fails (exit 1)."""
    cluster.lab("reset", "01")
    solved = cluster.lab("solve", "01", timeout=240)
    assert [line.split()[0] for line in solved.stdout.splitlines()] == ["01.1", "01.2", "01.3", "01.4", "01.5"]
    assert cluster.lab("check", "01", check=False).returncode == 0
    cluster.lab("reset", "01")
    assert cluster.lab("check", "01.1", check=False).returncode == 1


def test_the_notebooks_kubectl_way_deploys_the_lab_from_another_directory(
    cluster: LocalCluster, ctx: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 2 of the released notebook names the kubectl way to apply the overlay; run as written, from a
    directory that is not the project's (the notebook's own), it deploys the monolith and its Service."""
    released = nbformat.read(release.LABS / f"{LAB_ID}.ipynb", as_version=4)
    markdown = "\n".join(cell.source for cell in released.cells if cell.cell_type == "markdown")
    (kubectl_way,) = KUBECTL_WAY.findall(markdown)
    reset(ctx)
    monkeypatch.chdir(tmp_path)
    follow(f"`{kubectl_way}`", ctx, cluster, tmp_path, {"overlay_path": overlay_path})
    wait_until_ready(ctx, [APP])
    for check_id in ("01.1", "01.2"):
        (step,) = select(check_id)
        assert run_check(step, ctx).ok, check_id
