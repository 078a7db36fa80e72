"""`lab check 00` as an attendee runs it: exit 1 on a fresh cluster, 0 after `lab solve 00`, 2 when down."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.conftest import LocalCluster


def lab(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The `lab` CLI in the cluster's LAB_HOME, with KUBECONFIG set as `make run` sets it for JupyterLab."""
    run = subprocess.run(
        [sys.executable, "-m", "localcluster.cli", *args],
        env=cluster.env | {"KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run


def test_check_fails_on_a_fresh_cluster_passes_after_solve_and_fails_again_after_reset(
    fresh_cluster: LocalCluster,
) -> None:
    fresh = lab(fresh_cluster, "check", "00")
    assert fresh.returncode == 1, fresh.stdout + fresh.stderr
    assert "00.3  FAILED" in fresh.stdout and "hint: Run the cell that applies" in fresh.stdout
    assert "4 checks: 2 passed, 2 failed" in fresh.stdout

    # Twice: solving is safe to repeat, and each time ends with every check green.
    for _ in range(2):
        solved = lab(fresh_cluster, "solve", "00")
        assert solved.returncode == 0, solved.stderr
        assert "00.4  done" in solved.stdout
        checked = lab(fresh_cluster, "check", "00")
        assert checked.returncode == 0, checked.stdout
        assert "4 checks: 4 passed" in checked.stdout

    assert lab(fresh_cluster, "reset", "00").returncode == 0
    assert lab(fresh_cluster, "check", "00").returncode == 1


def test_check_exits_2_with_one_line_when_localcluster_is_down(fresh_cluster: LocalCluster) -> None:
    fresh_cluster.lab("down")
    down = lab(fresh_cluster, "check", "00")
    assert down.returncode == 2
    assert down.stdout == ""
    assert down.stderr.startswith("Cannot reach the cluster: ")
    assert down.stderr.count("\n") == 1
