"""What the course tiers read from the lab notebooks: which exist, the code the attendee writes, and how one runs."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import papermill
import pytest

from labkit import release
from labkit.settings import PROJECT_ROOT

#: Every lab's source notebook, so labs added to solutions/ are covered without touching the tests.
SOLUTION_NOTEBOOKS = sorted(release.SOLUTIONS.glob(release.LAB_NOTEBOOKS))
#: Where tests keep what a human should look at after a run (gitignored).
ARTIFACTS = PROJECT_ROOT / "test-artifacts"

_SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    """The nbgrader id of a cell, if nbgrader knows it."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def attendee_solutions(source: Path) -> dict[str, str]:
    """The code of each cell the attendee completes, by nbgrader grade_id, in notebook order."""
    notebook = nbformat.read(source, as_version=4)
    return {
        cell.metadata.nbgrader["grade_id"]: _SOLUTION_MARKERS.sub("", cell.source)
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }


def execute(notebook: Path, executed_copy: Path, *, cwd: Path, cell_timeout: int, label: str) -> nbformat.NotebookNode:
    """Run `notebook` top to bottom with papermill, keeping the executed copy to read after a failure.

    A cell that raises fails the test at once, saying which (`label`), which cell and what it raised.
    """
    executed_copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        return papermill.execute_notebook(
            notebook,
            executed_copy,
            cwd=cwd,
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=cell_timeout,
        )
    except papermill.PapermillExecutionError as failure:
        pytest.fail(
            f"{label}: cell {failure.exec_count} raised {failure.ename}: {failure.evalue}\n"
            f"(executed copy: {executed_copy})",
            pytrace=False,
        )
