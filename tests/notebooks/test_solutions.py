"""Every solutions/ notebook runs top to bottom with papermill against a fresh localcluster, twice.

A cell that raises fails the run, and so does every check that is not PASSED: the hidden test cells
call `labkit.check(...).raise_for_status()`, and any check panel a notebook shows must be green.
The executed copies are kept under test-artifacts/notebooks/ to read after a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from checkers import Status, find_lab
from tests.notebooks.conftest import LocalCluster
from tests.notebooks.course import ARTIFACTS, SOLUTION_NOTEBOOKS, execute, grade_id

#: Seconds one cell may run: longer than any check's own budget, so a stuck cell fails instead of hanging.
CELL_TIMEOUT = 240
#: The first line of a check panel as text (labkit.CheckPanel): "✔ 00.1 PASSED: The Kubernetes API answers".
PANEL_LINE = re.compile(rf"^\S (?P<check_id>\d\d\.\d+) (?P<status>{'|'.join(Status)}): ", re.MULTILINE)
#: How a hidden test cell grades a check.
GRADED_CHECK = re.compile(r'labkit\.check\("(?P<check_id>\d\d\.\d+)"\)\.raise_for_status\(\)')

#: Answers the attendee is asked to work out, which no output may show before the cell where they write
#: them: lab id -> (that cell's grade id, what would give the answer away).
ANSWERS_KEPT = {
    "01-monolith": ("apply-monolith-service", re.compile(r"^\s*selector:", re.MULTILINE)),
    "02-microservices": ("write-balance-service", re.compile(r"kind: Service\n(?:(?!kind:).*\n)*?\s*name: balance\n")),
}

pytestmark = pytest.mark.notebooks


def shown_verdicts(executed: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(check id, status) of every check panel the executed notebook displays, in order."""
    verdicts = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            verdicts += [(m["check_id"], m["status"]) for m in PANEL_LINE.finditer(text)]
    return verdicts


def outputs_before(executed: nbformat.NotebookNode, cell_id: str) -> str:
    """The text every cell before the one with grade id `cell_id` showed."""
    shown = []
    for cell in executed.cells:
        if grade_id(cell) == cell_id:
            return "\n".join(shown)
        for output in cell.get("outputs", []):
            shown.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    raise AssertionError(f"no cell {cell_id!r}")


def graded_checks(executed: nbformat.NotebookNode) -> set[str]:
    """Ids of the checks that cells which ran graded with raise_for_status."""
    return {
        match["check_id"]
        for cell in executed.cells
        if cell.cell_type == "code" and cell.execution_count
        for match in GRADED_CHECK.finditer(cell.source)
    }


@pytest.mark.parametrize("notebook", SOLUTION_NOTEBOOKS, ids=lambda path: path.stem)
def test_solution_runs_top_to_bottom_twice_with_every_check_passed(
    notebook: Path, lab_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Twice on the same cluster: a notebook run again (a kernel restarted, "Run All" once more) stays green."""
    for run in ("first", "second"):
        executed_copy = ARTIFACTS / "notebooks" / f"{notebook.stem}-{run}-run.ipynb"
        executed = execute(
            notebook, executed_copy, cwd=tmp_path, cell_timeout=CELL_TIMEOUT, label=f"{notebook.name}, {run} run"
        )
        assert graded_checks(executed) == {one.check_id for one in find_lab(notebook.stem).checks}
        not_passed = [(check_id, status) for check_id, status in shown_verdicts(executed) if status != Status.PASSED]
        assert not not_passed, f"{notebook.name}, {run} run: checks that did not pass: {not_passed} ({executed_copy})"
        if notebook.stem in ANSWERS_KEPT:
            cell_id, answer = ANSWERS_KEPT[notebook.stem]
            shown = answer.search(outputs_before(executed, cell_id))
            assert shown is None, f"{notebook.name}: an output before {cell_id!r} gives its answer away: {shown}"
