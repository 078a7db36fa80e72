"""The course's notebooks (solutions/) top to bottom on a real cluster with Knative and Istio, every
check passing, as tests/notebooks runs them on localcluster. Opt-in: see conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from checkers import Status
from tests.e2e.conftest import RealCluster
from tests.notebooks.course import ARTIFACTS, SOLUTION_NOTEBOOKS, execute
from tests.notebooks.test_solutions import CELL_TIMEOUT, shown_verdicts

pytestmark = pytest.mark.e2e


def test_the_cluster_has_what_the_labs_need(real_cluster: RealCluster) -> None:
    crds = real_cluster.kubectl("get", "crd", "-o", "name").stdout
    for needed in ("services.serving.knative.dev", "virtualservices.networking.istio.io"):
        assert needed in crds, f"{needed} is missing: run infra/cluster/bootstrap.py up"


@pytest.mark.parametrize("notebook", SOLUTION_NOTEBOOKS, ids=lambda path: path.stem)
def test_every_lab_runs_with_every_check_passed(
    notebook: Path, real_cluster: RealCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in real_cluster.env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    executed_copy = ARTIFACTS / "e2e" / f"{notebook.stem}.ipynb"
    # Twice the local budget per cell: image pulls and real scheduling.
    executed = execute(notebook, executed_copy, cwd=tmp_path, cell_timeout=CELL_TIMEOUT * 2, label=notebook.name)
    not_passed = [(check_id, status) for check_id, status in shown_verdicts(executed) if status != Status.PASSED]
    assert not not_passed, f"{notebook.name}: checks that did not pass: {not_passed} ({executed_copy})"
